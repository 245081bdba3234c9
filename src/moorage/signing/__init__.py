"""Signatures and trust: keys and roots per namespace, finding and verifying signatures offline."""
