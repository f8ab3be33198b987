"""DKIM signing cost per message: dkimpy, citymail's prepared-body path, and C signers.

    .venv/bin/python bench/dkim_cost.py [--runs 7] [--count 40]

Signs a 10 KB list post (RSA-2048 and Ed25519 keys made for the run) and prints, in
milliseconds of one core per message (the median of --runs runs of --count signatures):

* ``dkimpy_rsa`` / ``dkimpy_ed25519``: plain ``dkim.sign`` of the whole message, relaxed/
  relaxed (parse, body hash, key parse and the signature, every time);
* ``prepare``: ``Signer.prepare`` (body hash and shared headers), once per message;
* ``recipient_*``: ``PreparedMessage.sign(head)`` per recipient, with the RSA operation in
  pure Python (dkimpy) or in OpenSSL (cryptography), Ed25519 alone, and RSA + Ed25519;
* ``openssl_*``: ``openssl speed``'s RSA-2048 and Ed25519 signature, the floor of any C
  signer (OpenDKIM and rspamd both sign with OpenSSL);
* ``opendkim_testmsg``: libopendkim signing the same message (``opendkim-testmsg``, one
  process per message, from Debian's ``opendkim-tools``; it signs with its library
  defaults, rsa-sha1 relaxed/simple): CPU per process, the same process verifying an
  unsigned copy (start-up, no key), and the difference.

Sections whose tool is missing print null.  Every signature made is checked with
``dkim.verify`` before the figures are printed.  The last line is JSON.

Measured here (2 cores, 2026-11, with other test suites running, load average 2 to 4;
FIELD-NOTES has 6.5 ms for plain dkimpy, this run 10 ms; medians of 9 runs of 30, CPU ms):

    dkimpy_rsa 10.1 ms   dkimpy_ed25519 1.1   prepare 0.8 (once per message)
    per recipient: RSA pure Python 9.1, RSA OpenSSL 1.0, Ed25519 0.15, RSA + Ed25519 1.2
    openssl speed: RSA-2048 sign 0.77, Ed25519 0.05
    opendkim-testmsg: 10.2 ms CPU per process, of which 4.9 is start-up

So the prepared path saves the parse and body hash (~1 ms) but RSA dominates: in pure
Python a copy costs ~9 ms (~110 personalised copies/s per core); with cryptography it
costs ~1.0 ms (~1,000/s per core), within 0.25 ms of OpenSSL's own RSA.  Ed25519 alone is
cheap, but receivers that do not check Ed25519 still need the RSA signature beside it.

Signing at the relay is the alternative: Postfix with the OpenDKIM milter, or rspamd's
dkim_signing module, signs in C at the MTA with the same OpenSSL RSA operation (0.77 ms
here; opendkim-testmsg's 5 ms over start-up is an upper bound, as it loads the key and
writes temporary files for every message), so the workers do no public-key work and keep
no private key.  Prefer it when the relay already signs other mail, when keys must stay
off the worker machines, or when cryptography cannot be installed; otherwise in-process
signing with cryptography costs the same CPU and keeps one configuration.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# This file has the name of the package it measures: keep its own folder off the path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import dkim  # noqa: E402

from mailer.dkim_sign import Signer, ed25519_key, rsa_key  # noqa: E402
from mailer.dkim_verify import static_dns  # noqa: E402
from mailer.listheaders import personal_headers  # noqa: E402

DOMAIN = "lists.cacities.org"


def message(size: int = 10_000) -> bytes:
    head = (
        b'From: "Ana Perez" <ana@sanmateo.example>\r\nTo: city-clerks@lists.cacities.org\r\n'
        b"Subject: [City Clerks] Records retention schedule question\r\n"
        b"Date: Mon, 2 Nov 2026 09:00:00 -0800\r\nMessage-ID: <q1@sanmateo.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b'List-Id: "City Clerks department" <city-clerks.lists.cacities.org>\r\n'
        b"List-Post: <mailto:city-clerks@lists.cacities.org>\r\nPrecedence: list\r\n\r\n"
    )
    line = "Does anyone keep café permits past seven years? We are reviewing it.\r\n".encode()
    return head + line * ((size - len(head)) // len(line) + 1)


def rsa_pem(folder: Path) -> bytes:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        path = folder / "rsa.pem"
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(path), "2048"],
                       check=True, capture_output=True)
        return path.read_bytes()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def per_message(cases: dict[str, Callable[[], object]], runs: int,
                count: int) -> dict[str, float]:
    """Median over *runs* of the mean CPU time of *count* calls of each case, in ms.

    CPU time of this (single-threaded) process, not wall time: the cost to one core.  The
    cases take turns within each run, so a burst of other work on the machine weighs on
    all of them alike.
    """
    means: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    for _ in range(runs):
        for name, fn in cases.items():
            start = time.process_time()
            for _ in range(count):
                fn()
            means[name].append((time.process_time() - start) / count * 1000)
    return {name: round(statistics.median(values), 3) for name, values in means.items()}


def openssl_speed(algorithm: str) -> float | None:
    """OpenSSL's own signature time in milliseconds (``openssl speed``), or None."""
    if shutil.which("openssl") is None:
        return None
    out = subprocess.run(["openssl", "speed", "-seconds", "1", algorithm],
                         capture_output=True, text=True).stdout
    label = r"rsa 2048 bits" if algorithm == "rsa2048" else r"\(Ed25519\)"
    found = re.search(label + r"\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)  # the sign/s column
    return round(1000 / float(found.group(1)), 4) if found else None


def opendkim(pem: bytes, data: bytes, folder: Path, runs: int) -> dict[str, float] | None:
    """CPU per opendkim-testmsg process signing *data*, and its start-up (verify, no key)."""
    tool = shutil.which("opendkim-testmsg") or (
        "/usr/sbin/opendkim-testmsg" if Path("/usr/sbin/opendkim-testmsg").exists() else None)
    if tool is None:
        return None
    key, msg = folder / "opendkim.key", folder / "msg.eml"
    key.write_bytes(pem)
    key.chmod(0o600)
    msg.write_bytes(data)

    def cpu(argv: list[str], *, signing: bool) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs * 5):
            with open(msg, "rb") as stdin:  # the tool needs a file, not a pipe, on stdin
                out = subprocess.run(argv, stdin=stdin, capture_output=True).stdout
            if signing and not out.startswith(b"DKIM-Signature:"):
                raise SystemExit(f"opendkim-testmsg did not sign: {out[:200]!r}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return round(used / (runs * 5) * 1000, 3)

    signing = cpu([tool, "-d", DOMAIN, "-s", "bench", "-k", str(key)], signing=True)
    startup = cpu([tool], signing=False)  # verify mode: no signature to check, no key
    return {"sign_cpu_ms": signing, "startup_cpu_ms": startup,
            "difference_ms": round(signing - startup, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    runs, count = args.runs, args.count

    folder = Path(tempfile.mkdtemp(prefix="citymail-dkim-bench-"))
    try:
        return _run(folder, runs, count)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, runs: int, count: int) -> int:
    data = message()
    pem = rsa_pem(folder)
    seed = os.urandom(32)
    head = personal_headers("https://lists.cacities.org/u/AbCdEf0123456789.xyz",
                            "mailto:city-clerks-leave@lists.cacities.org")
    relaxed = (b"relaxed", b"relaxed")
    python_rsa = Signer(DOMAIN, [rsa_key(pem, "rsa", backend="dkimpy")])
    cases: dict[str, Callable[[], bytes]] = {
        "dkimpy_rsa": lambda: dkim.sign(data, b"rsa", DOMAIN.encode(), pem,
                                        canonicalize=relaxed) + data,
        "prepare": lambda: python_rsa.prepare(data).body_hash,
    }
    signers = {"recipient_rsa_dkimpy": python_rsa}
    try:
        signers["recipient_rsa_openssl"] = Signer(
            DOMAIN, [rsa_key(pem, "rsa", backend="cryptography")])
    except Exception as exc:  # no cryptography: that row is null
        print(f"no OpenSSL RSA backend: {exc}", file=sys.stderr)
    try:
        ed = ed25519_key(seed, "ed")
    except Exception as exc:  # no PyNaCl: the Ed25519 rows are null
        print(f"no Ed25519: {exc}", file=sys.stderr)
    else:
        cases["dkimpy_ed25519"] = lambda: dkim.sign(
            data, b"ed", DOMAIN.encode(), base64.b64encode(seed),
            signature_algorithm=b"ed25519-sha256", canonicalize=relaxed) + data
        signers["recipient_ed25519"] = Signer(DOMAIN, [ed])
        rsa = signers.get("recipient_rsa_openssl", python_rsa).keys[0]
        signers["recipient_rsa_and_ed25519"] = Signer(DOMAIN, [rsa, ed])
    for name, signer in signers.items():
        ready = signer.prepare(data)
        cases[name] = lambda ready=ready: ready.sign(head) + head + data

    _check([(name, fn()) for name, fn in cases.items() if name != "prepare"], pem, seed)
    timed: dict[str, float | None] = dict.fromkeys(
        ["dkimpy_rsa", "dkimpy_ed25519", "prepare", "recipient_rsa_dkimpy",
         "recipient_rsa_openssl", "recipient_ed25519", "recipient_rsa_and_ed25519"])
    timed.update(per_message(cases, runs, count))
    timed["openssl_rsa2048_sign"] = openssl_speed("rsa2048")
    timed["openssl_ed25519_sign"] = openssl_speed("ed25519")
    results: dict[str, object] = {
        "message_bytes": len(data), "runs": runs, "count": count, "ms_per_message": timed,
        "per_core_per_s": {k: round(1000 / v) for k, v in timed.items() if v},
        "opendkim_testmsg": opendkim(pem, data, folder, runs),
    }
    for name, value in timed.items():
        print(f"{name:<28} {'-' if value is None else f'{value:8.3f} ms'}")
    print(f"{'opendkim_testmsg':<28} {results['opendkim_testmsg']}")
    print(json.dumps(results))
    return 0


def _check(made: list[tuple[str, bytes]], pem: bytes, seed: bytes) -> None:
    """Every signature made by the benchmark must verify (public keys from the keys)."""
    from dkim.crypto import parse_pem_private_key

    pk = parse_pem_private_key(pem)
    n, e = pk["modulus"], pk["publicExponent"]
    records = {f"rsa._domainkey.{DOMAIN}": "v=DKIM1; k=rsa; p="
               + base64.b64encode(_rsa_public_der(n, e)).decode()}
    try:
        import nacl.signing

        public = bytes(nacl.signing.SigningKey(seed).verify_key)
        records[f"ed._domainkey.{DOMAIN}"] = "v=DKIM1; k=ed25519; p=" + base64.b64encode(
            public).decode()
    except ImportError:
        pass
    dns = static_dns(records)
    for name, signed in made:
        count = signed.count(b"DKIM-Signature:")
        if not all(dkim.DKIM(signed).verify(idx=i, dnsfunc=dns) for i in range(count)):
            raise SystemExit(f"{name}: a signature did not verify")


def _rsa_public_der(n: int, e: int) -> bytes:
    """PKCS #1 RSAPublicKey DER (dkimpy accepts it as p=, as well as SubjectPublicKeyInfo)."""
    def der(tag: int, body: bytes) -> bytes:
        size = len(body)
        length = bytes([size]) if size < 0x80 else (
            bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
                (size.bit_length() + 7) // 8, "big"))
        return bytes([tag]) + length + body

    def integer(value: int) -> bytes:
        return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))

    return der(0x30, integer(n) + integer(e))


if __name__ == "__main__":
    sys.exit(main())
