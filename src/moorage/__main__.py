from moorage.cli import app

app(prog_name="moorage")
