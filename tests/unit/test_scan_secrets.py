"""Secret rules (scan/secrets.py): each planted secret is found by its rule with a redacted
fingerprint, nothing is found in clean files or binaries, and the value never appears in a
finding."""

from __future__ import annotations

import json

from moorage.scan.secrets import SecretScanner, fingerprint, scan_text

from .secretdata import ALL, AWS_ID, CLEAN, HF_TOKEN, files


def test_each_planted_secret_is_found_by_its_rule() -> None:
    found = {}
    for path, data in files().items():
        for f in scan_text(path, data):
            found.setdefault(f.rule, []).append(f)
    assert set(found) == set(ALL)
    for rule, value in ALL.items():
        (hit,) = found[rule]
        assert hit.fingerprint == fingerprint(rule, value.encode())
        assert hit.fingerprint.startswith(f"{rule}:{value[:4]}…:sha256:")


def test_no_finding_carries_the_secret() -> None:
    text = json.dumps([f.to_dict() for path, data in files().items()
                       for f in scan_text(path, data)])
    for value in ALL.values():
        assert value not in text
        assert value[4:] not in text


def test_clean_files_and_placeholders_give_nothing() -> None:
    assert [f for path, data in CLEAN.items() for f in scan_text(path, data)] == []


def test_a_binary_file_is_not_read() -> None:
    data = b"\x7fELF\x00\x00" + AWS_ID.encode()
    assert scan_text("usr/bin/tool", data) == []
    scanner = SecretScanner("usr/bin/tool")
    assert scanner.feed(data) is False
    assert scanner.result() == []


def test_the_streaming_scanner_sees_a_secret_split_across_pieces() -> None:
    data = f"line one\nTOKEN={HF_TOKEN}\n".encode()
    scanner = SecretScanner("app/config.txt")
    for i in range(0, len(data), 7):
        assert scanner.feed(data[i:i + 7])
    (hit,) = scanner.result()
    assert (hit.rule, hit.line) == ("huggingface-token", 2)


def test_a_value_two_rules_find_is_reported_once_by_the_specific_rule() -> None:
    env = f"HF_TOKEN={HF_TOKEN}\nDB_PASSWORD=hunter2-but-longer\n".encode()
    assert [(f.rule, f.line) for f in scan_text("app/.env", env)] == [
        ("huggingface-token", 1), ("dotenv-secret", 2)]
    netrc = b"machine api.wandb.ai\n  login user\n  password " + b"0123456789abcdef" * 2 + \
        b"01234567\n"
    assert [f.rule for f in scan_text("root/.netrc", netrc)] == ["wandb-api-key"]
