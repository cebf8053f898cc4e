"""The probability Record: checked with a protobuf wire reader written here from seg/serve/record.proto alone.

Nothing in this reader comes from seg.serve.record or the protobuf package, so an encoder bug cannot hide behind
a matching decoder bug. Wire format: each field is a varint key (field_number << 3 | wire_type) followed by
a varint (type 0), 8 bytes (1), a varint length + bytes (2) or 4 bytes (5).
"""
import io
import re
import struct

import numpy as np
import pytest

from seg.pipe.recordio import MAGIC_BYTES, iter_records, pack
from seg.serve.record import Record, decode_probability_record, probability_record
from seg.errors import RecordError
from repo import ROOT

PROTO = ROOT / "seg" / "serve" / "record.proto"


def read_varint(data, pos):
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def read_fields(data):
    """[(field number, wire type, value)] of one message; value is bytes for LEN, int otherwise."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            length, pos = read_varint(data, pos)
            value, pos = bytes(data[pos:pos + length]), pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = bytes(data[pos:pos + size]), pos + size
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        fields.append((number, wire, value))
    assert pos == len(data), "a field ran past the end of its message"
    return fields


def decode_features(payload):
    """Record.features (field 1, map<string, Value>) -> {name: ("float32"|"int32", np.ndarray)}."""
    features = {}
    for number, wire, entry in read_fields(payload):
        assert (number, wire) == (1, 2), f"unexpected Record field {number}"
        parts = {n: v for n, _, v in read_fields(entry)}
        name = parts[1].decode()
        ((kind, _, tensor),) = read_fields(parts[2])  # Value: exactly one member of the oneof
        values = [v for n, _, v in read_fields(tensor) if n == 1]
        assert len(values) == 1, "values must be one packed field"
        if kind == 2:  # float32_tensor: packed little-endian float32
            features[name] = ("float32", np.frombuffer(values[0], dtype="<f4"))
        elif kind == 7:  # int32_tensor: packed varints
            packed, out, pos = values[0], [], 0
            while pos < len(packed):
                v, pos = read_varint(packed, pos)
                out.append(v - (1 << 64) if v >= 1 << 63 else v)
            features[name] = ("int32", np.array(out))
        else:
            raise AssertionError(f"unexpected Value member {kind}")
    return features


def test_probability_record_carries_target_values_in_c_order_and_an_int32_shape():
    probs = np.random.default_rng(0).random((3, 5, 7), dtype=np.float32)
    features = decode_features(probability_record(probs))
    assert set(features) == {"target", "shape"}
    assert features["shape"][0] == "int32" and features["shape"][1].tolist() == [1, 3, 5, 7]
    kind, values = features["target"]
    assert kind == "float32"
    np.testing.assert_array_equal(values.reshape(1, 3, 5, 7)[0], probs)


def test_probability_record_accepts_a_leading_batch_axis_and_rejects_other_ranks():
    probs = np.full((1, 2, 3, 4), 0.5, dtype=np.float32)
    assert decode_features(probability_record(probs))["shape"][1].tolist() == [1, 2, 3, 4]
    with pytest.raises(RecordError, match=r"\(C, H, W\)"):
        probability_record(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(RecordError, match="shape"):
        probability_record(np.zeros((2, 1, 2, 2), dtype=np.float32))


def test_framed_record_survives_a_payload_containing_the_recordio_magic():
    # Place the magic's bytes at every byte shift inside the float data: at one shift it sits on a 4-byte
    # boundary of the payload, where pack must split the record (first part flagged cflag 1).
    first_flags = set()
    for shift in range(4):
        raw = bytes(shift) + MAGIC_BYTES * 3 + bytes(4 - shift)
        probs = np.frombuffer(raw, dtype="<f4").reshape(1, 2, 2).copy()
        payload = probability_record(probs)
        framed = pack(payload)
        first_flags.add(struct.unpack("<II", framed[:8])[1] >> 29)
        (unframed,) = list(iter_records(io.BytesIO(framed)))
        assert unframed == payload
        np.testing.assert_array_equal(decode_probability_record(unframed), probs)
    assert first_flags == {0, 1}


def test_decode_probability_record_round_trips_and_names_what_is_wrong():
    probs = np.random.default_rng(1).random((2, 3, 4), dtype=np.float32)
    np.testing.assert_array_equal(decode_probability_record(probability_record(probs)), probs)
    with pytest.raises(RecordError, match="not an aialgs.data.Record"):
        decode_probability_record(b"\xff\xff\xff")
    with pytest.raises(RecordError, match="lacks the 'target'/'shape'"):
        decode_probability_record(Record(uid="x").SerializeToString())
    bad = Record()
    bad.features["shape"].int32_tensor.values.extend([1, 2, 2, 2])
    bad.features["target"].float32_tensor.values.extend([0.5] * 7)
    with pytest.raises(RecordError, match=r"does not describe \[1, C, H, W\] for 7 values"):
        decode_probability_record(bad.SerializeToString())


_SCALARS = {"float": "TYPE_FLOAT", "double": "TYPE_DOUBLE", "int32": "TYPE_INT32", "uint64": "TYPE_UINT64",
            "bytes": "TYPE_BYTES", "string": "TYPE_STRING"}


def parse_proto(text):
    """{message: {field: (label, type, number)}} from the .proto text (messages, oneofs and maps only)."""
    text = re.sub(r"//[^\n]*", "", text)
    messages = {}
    for name, body in re.findall(r"message\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        fields = {}
        for label, kind, field, number in re.findall(
                r"(optional|repeated)?\s*(map<\s*string\s*,\s*\w+\s*>|\w+)\s+(\w+)\s*=\s*(\d+)", body):
            fields[field] = (label or "oneof", kind.replace(" ", ""), int(number))
        messages[name] = fields
    return messages


def descriptor_fields(descriptor):
    from google.protobuf.descriptor import FieldDescriptor

    type_names = {getattr(FieldDescriptor, v): k for k, v in _SCALARS.items()}
    fields = {}
    for f in descriptor.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            assert key.type == FieldDescriptor.TYPE_STRING
            fields[f.name] = ("", f"map<string,{value.message_type.name}>", f.number)
            continue
        kind = f.message_type.name if f.message_type is not None else type_names[f.type]
        # protobuf >= 5 has is_repeated; 7 dropped .label
        repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED
        label = "repeated" if repeated else (
            "oneof" if f.containing_oneof is not None else "optional")
        if label == "repeated" and f.message_type is None:
            assert f.GetOptions().packed == (kind != "bytes"), f"{descriptor.name}.{f.name} packing"
        fields[f.name] = (label, kind, f.number)
    return fields


def test_record_classes_match_the_shipped_record_proto_field_by_field():
    proto = parse_proto(PROTO.read_text())
    assert set(proto) == {"Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes", "Value", "Record"}
    pool = Record.DESCRIPTOR.file.pool
    for name, fields in proto.items():
        built = descriptor_fields(pool.FindMessageTypeByName(f"aialgs.data.{name}"))
        expected = {f: ("" if k.startswith("map<") else label, k, n) for f, (label, k, n) in fields.items()}
        assert built == expected, name
