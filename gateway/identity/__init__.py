"""Identity and trust, iSHARE-compatible: certificates, client assertions, access
tokens, the participant registry client. Library errors (joserfc, cryptography,
httpx) are translated into ``gateway.errors`` here and go no further."""
