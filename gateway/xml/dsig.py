"""The names of XML-DSig that the contract's profile (section 3) allows or refuses: namespaces, algorithms,
transforms. Values only."""

from __future__ import annotations

DS = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED = DS + "enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

ALLOWED_SIGNATURE_METHODS: frozenset[str] = frozenset({RSA_SHA256, RSA_SHA512, ECDSA_SHA256, ECDSA_SHA384})
ALLOWED_DIGESTS: frozenset[str] = frozenset({SHA256, SHA384, SHA512})
ALLOWED_SIGNED_INFO_C14N: frozenset[str] = frozenset({EXC_C14N})
TRANSFORMS: tuple[str, ...] = (ENVELOPED, EXC_C14N)

_D = f"{{{DS}}}"
_SIGNATURE = _D + "Signature"
