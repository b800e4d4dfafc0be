"""Client specs are checked against 128-bit security by concrete's own security model before
any key exists: weakened or malformed parameters are refused with the reason."""

import copy
import json
import math

import pytest

pytest.importorskip("concrete.fhe")

from concrete import fhe  # noqa: E402
from concrete.fhe.compilation.configuration import SecurityLevel  # noqa: E402

from fhe import security as sec  # noqa: E402
from fhe.client import HeadClient, InputSpec, make_client_specs, parse_client_specs  # noqa: E402
from fhe.compile import compile_head, make_inputset  # noqa: E402
from fhe.server import HeadServer  # noqa: E402
from zk.attention_ref import HeadConfig, random_head  # noqa: E402

TINY = dict(n_bits=3, score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3, prob_bits=3)


@pytest.fixture(scope="module")
def specs():
    head, _, calib = random_head(HeadConfig(4, 2, 2, **TINY), seed=1, n_calib=16)
    circuit = compile_head(head, make_inputset(head, calib))
    blob = HeadServer.from_circuit(circuit).client_specs()
    _, _, spec, raw = parse_client_specs(blob)
    return blob, json.loads(raw), spec, head, calib


def test_curve_is_concretes_own(specs):
    """The 128-bit curve comes from concrete's runtime library (the one its optimizer uses);
    the built-in copy of concrete 2.11's curve agrees with it."""
    curve = sec.security_curve(128)
    assert curve.source == "concrete's runtime library"
    slope, bias, n_min = sec._COPY_2_11[128]
    assert (curve.slope, curve.bias, curve.minimal_lwe_dimension) == (slope, bias, n_min)
    copy_curve = sec.SecurityCurve(128, slope, bias, n_min, "copy")
    for n in (450, 600, 828, 1024, 2048, 4096, 8192):
        assert copy_curve.minimal_variance(n) == pytest.approx(curve.minimal_variance(n),
                                                               rel=1e-12)
    assert math.isnan(curve.minimal_variance(449))
    # the variances concrete put into the compiled specs are exactly the curve's minimum
    keyset = specs[1]["keyset"]
    ksk = keyset["lweKeyswitchKeys"][0]["params"]
    assert ksk["variance"] == curve.minimal_variance(ksk["outputLweDimension"])


def test_compiled_specs_pass(specs):
    blob, _, _, head, _ = specs
    client = HeadClient(blob, head=head)
    report = client.security
    assert report.bits == 128 and len(report.rows) >= 3
    assert all(v >= m for _, _, v, m in report.rows)
    assert "128-bit security" in report.summary()


def test_specs_compiled_at_132_bits_pass_128(specs):
    _, _, _, head, calib = specs
    circuit = compile_head(head, make_inputset(head, calib),
                           security_level=SecurityLevel.SECURITY_132_BITS)
    blob = HeadServer.from_circuit(circuit).client_specs()
    assert HeadClient(blob, min_security_bits=132).security.bits == 132
    HeadClient(blob)


def _weaken(specs, change) -> bytes:
    doc = copy.deepcopy(specs[1])
    change(doc)
    raw = json.dumps(doc).encode()
    fhe.ClientSpecs.deserialize(raw)  # concrete itself would take these parameters
    return make_client_specs(raw, specs[2])


def _small_key(doc, n):
    ks = doc["keyset"]
    ks["lweSecretKeys"][1]["params"]["lweDimension"] = n
    ks["lweBootstrapKeys"][0]["params"]["inputLweDimension"] = n
    ks["lweKeyswitchKeys"][0]["params"]["outputLweDimension"] = n


def _input(doc):
    return doc["circuits"][0]["inputs"][0]["typeInfo"]["lweCiphertext"]["encryption"]


def _ksk(doc):
    return doc["keyset"]["lweKeyswitchKeys"][0]["params"]


WEAKENED = {
    "keyswitch noise 2^-10 of the minimum": (
        lambda d: _ksk(d).update(variance=_ksk(d)["variance"] * 2 ** -20),
        "keyswitch key 0: noise variance"),
    "input encrypted without noise": (
        lambda d: _input(d).update(variance=0.0), "input 0 of circuit 'f': noise variance 0"),
    "small key below the curve": (lambda d: _small_key(d, 400), "dimension 400, below 450"),
    "small key 700 with 828's noise": (lambda d: _small_key(d, 700), "3.3 bits"),
    "GLWE key 1024 with 4096's noise": (
        lambda d: (d["keyset"]["lweBootstrapKeys"][0]["params"].update(polynomialSize=1024),
                   d["keyset"]["lweSecretKeys"][0]["params"].update(lweDimension=1024),
                   _input(d).update(lweDimension=1024)),
        "bootstrap key 0: noise variance"),
    "another ciphertext modulus": (
        lambda d: _ksk(d).update(modulus={"modulus": {"powerOfTwo": {"power": 32}}}),
        "native ciphertext modulus"),
}


@pytest.mark.parametrize("case", list(WEAKENED))
def test_weakened_specs_refused(specs, case):
    change, words = WEAKENED[case]
    blob = _weaken(specs, change)
    with pytest.raises(sec.InsecureParameters) as e:
        HeadClient(blob)
    assert words in str(e.value)
    assert "128-bit" in str(e.value) or "accept" in str(e.value)


def test_ambiguous_specs_refused(specs):
    """JSON with a duplicated key could be read one way by the check and another by concrete."""
    raw = json.dumps(specs[1])
    dup = raw.replace('"keyset": {', '"keyset": {"lweSecretKeys": [], ', 1)
    assert dup != raw
    blob = make_client_specs(dup.encode(), specs[2])
    with pytest.raises(sec.InsecureParameters, match="duplicate key"):
        HeadClient(blob)
    assert InputSpec.of_head(specs[3]) == specs[2]
