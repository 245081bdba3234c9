"""Fake secrets for the scan tests, assembled at run time (no real-looking key is checked in
whole), and the files that carry them."""

from __future__ import annotations

import base64
import json

AWS_ID = "AKIA" + "ZQ7T4XW2M9PLK3RB"
AWS_SECRET = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCYzq9Xk3Lp2V"
HF_TOKEN = "hf_" + "QzWkRbTnYpLmXcVsDfGhJkLqWeRtYuIoPa"
GITHUB_TOKEN = "ghp_" + "R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2o"
NPM_TOKEN = "npm_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jj1Hh0Gg9Ff8"
DOCKER_AUTH = base64.b64encode(b"robot:" + b"s3cr3t-" + b"Pa55w0rd-9f8e7d").decode()
KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + "q" * 40
PRIVATE_KEY = ("-----BEGIN " + "RSA PRIVATE KEY-----\n" + KEY_BODY + "\n"
               + "-----END RSA PRIVATE KEY-----\n")

ALL = {"aws-access-key-id": AWS_ID, "aws-secret-access-key": AWS_SECRET,
       "huggingface-token": HF_TOKEN, "github-token": GITHUB_TOKEN,
       "npmrc-auth-token": NPM_TOKEN, "docker-config-auth": DOCKER_AUTH,
       "private-key": KEY_BODY}


def files() -> dict[str, bytes]:
    """One file per planted secret, at the paths such files live at."""
    return {
        "root/.aws/credentials": (f"[default]\naws_access_key_id = {AWS_ID}\n"
                                  f"aws_secret_access_key = {AWS_SECRET}\n").encode(),
        "app/settings.py": f'HF = "{HF_TOKEN}"\nDEBUG = False\n'.encode(),
        "app/deploy.sh": f"#!/bin/sh\nexport GH={GITHUB_TOKEN}\n".encode(),
        "root/.npmrc": f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n".encode(),
        "root/.docker/config.json": json.dumps(
            {"auths": {"registry.example": {"auth": DOCKER_AUTH}}}).encode(),
        "etc/ssl/private/server.key": PRIVATE_KEY.encode(),
    }


CLEAN = {
    "app/README.md": b"Set AWS_SECRET_ACCESS_KEY in the environment; tokens look like hf_...\n",
    "root/.npmrc": b"//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
    "etc/ssl/certs/ca.pem": b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n"
                            b"-----END CERTIFICATE-----\n",
    "app/main.py": b"import os\nprint(os.environ.get('TOKEN', 'none'))\n",
}
