#!/usr/bin/env python3
"""Writes the seed corpus of the spm_model fuzz target (t/fuzz/corpus/spm_model/).

Run from the repository root: python3 t/fuzz/mk-spm-model-seeds.py
Needs the protobuf module and sentencepiece's sentencepiece_model_pb2.
Each seed is a tiny ModelProto (well under 4 KB); the replay driver also
feeds every prefix of each, so truncations are covered."""
import os
import struct

from sentencepiece import sentencepiece_model_pb2 as pb

OUT = "t/fuzz/corpus/spm_model"
SP = pb.ModelProto.SentencePiece


def model(pieces, model_type=None, **trainer):
    m = pb.ModelProto()
    for s, score, t in pieces:
        p = m.pieces.add()
        p.piece = s
        p.score = score
        if t != SP.NORMAL:
            p.type = t
    if model_type is not None:
        m.trainer_spec.model_type = model_type
    for k, v in trainer.items():
        setattr(m.trainer_spec, k, v)
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    return m


def field(num, payload):
    """A length-delimited field written by hand (for fields pb2 lacks)."""
    def varint(v):
        out = b""
        while True:
            b, v = v & 0x7F, v >> 7
            out += bytes([b | (0x80 if v else 0)])
            if not v:
                return out
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def write(name, data):
    assert len(data) < 4096, name
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


specials = [("<unk>", 0.0, SP.UNKNOWN), ("<s>", 0.0, SP.CONTROL), ("</s>", 0.0, SP.CONTROL)]

# A BPE model as LLaMA's looks: specials, byte pieces, merges with -rank scores.
bpe = model(specials + [("<0x%02X>" % b, 0.0, SP.BYTE) for b in (0x0A, 0x41, 0xE4)] +
            [("▁t", -1.0, SP.NORMAL), ("he", -2.0, SP.NORMAL), ("▁the", -3.0, SP.NORMAL),
             ("的", -4.0, SP.NORMAL), ("中国", -5.0, SP.NORMAL)],
            model_type=pb.TrainerSpec.BPE, vocab_size=11, byte_fallback=True,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
write("bpe-small.model", bpe.SerializeToString())

# A unigram model (model_type left at its default), user-defined and unused
# pieces, a denormalizer_spec, plus what Python's pb2 does not know: field 4
# (self_test_data) and an extension-range field, both kept as raw bytes.
uni = model(specials + [("▁", -2.5, SP.NORMAL), ("<sep>", 0.0, SP.USER_DEFINED),
                        ("x", -3.25, SP.UNUSED), ("学习", -7.5, SP.NORMAL)])
uni.denormalizer_spec.name = "identity"
data = uni.SerializeToString()
data += field(4, field(1, field(1, b"abc") + field(2, b"a b c")))
data += field(200, b"extension payload")
write("unigram-extra-fields.model", data)

# Fields out of the order Python writes them: trainer_spec first, a piece
# last, and a piece with an unknown field of its own.
odd = model([("a", -1.0, SP.NORMAL)], model_type=pb.TrainerSpec.WORD)
ts = odd.trainer_spec.SerializeToString()
ns = odd.normalizer_spec.SerializeToString()
piece_b = SP(piece="b", score=-2.0).SerializeToString() + b"\x20\x07"  # field 4 varint
data = field(2, ts) + field(1, SP(piece="a", score=-1.0).SerializeToString()) + \
    field(3, ns) + field(1, piece_b)
write("field-order.model", data)

# A group (wire types 3/4) and fixed64 / fixed32 unknown fields at top level.
grp = b"\x33" + b"\x08\x01" + b"\x43\x48\x05\x44" + b"\x34"  # group 6 { 1: 1, group 8 { 9: 5 } }
data = model([("z", 0.0, SP.NORMAL)], model_type=pb.TrainerSpec.CHAR).SerializeToString()
data += grp + b"\x39" + struct.pack("<q", -1) + b"\x45" + struct.pack("<f", 1.5)
write("group-fixed.model", data)

# Invalid: the same piece twice, and a piece that is not UTF-8.
write("dup-piece.model", model([("a", 0.0, SP.NORMAL), ("a", -1.0, SP.NORMAL)]).SerializeToString())
write("bad-utf8.model", field(1, b"\x0a\x02\xc3\x28\x15\x00\x00\x00\x00"))
