"""The client address behind trusted proxies (X-Forwarded-For), and the setting that lists them."""

from __future__ import annotations

import pytest

from moorage.config import Settings, proxy_networks
from moorage.web.client import client_address

PROXIES = proxy_networks("10.0.0.0/8, 192.168.1.7,fd00::/8")


@pytest.mark.parametrize(
    "peer,forwarded,expected",
    [
        # no proxies configured or an untrusted peer: the socket peer, whatever the header says
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        # a trusted peer: the rightmost hop that is not a proxy; hops left of it are claims
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], "198.51.100.1"),
        ("10.1.2.3", ["6.6.6.6", "198.51.100.1, 192.168.1.7"], "198.51.100.1"),
        # every hop a proxy: the leftmost one
        ("10.1.2.3", ["10.4.4.4, 10.5.5.5"], "10.4.4.4"),
        # ports, brackets, IPv6, IPv4-mapped IPv6
        ("10.1.2.3", ["198.51.100.1:4711"], "198.51.100.1"),
        ("fd00::1", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("::ffff:10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
        # garbage ends the walk at the last trusted hop
        ("10.1.2.3", ["198.51.100.1, not-an-address"], "10.1.2.3"),
        ("10.1.2.3", ["198.51.100.1, not-an-address, 10.5.5.5"], "10.5.5.5"),
        # no header
        ("10.1.2.3", [], "10.1.2.3"),
    ],
)
def test_client_address(peer, forwarded, expected):
    assert client_address(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_address("10.1.2.3", ["198.51.100.1"], ()) == "10.1.2.3"


def test_trusted_proxies_setting():
    settings = Settings.from_env({"MOORAGE_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert [str(n) for n in proxy_networks(settings.trusted_proxies)] == ["10.0.0.0/8", "::1/128"]
    assert Settings.from_env({}).trusted_proxies == ""
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings.from_env({"MOORAGE_TRUSTED_PROXIES": "10.0.0.0/33"})
