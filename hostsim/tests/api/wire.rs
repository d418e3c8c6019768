//! Protobuf wire format written by hand, independent of the schema under test: hostsim's unit
//! tests (`src/api/protobuf/tests.rs`, through `#[path]`) and its API tests build bodies with it.

pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A varint field (int32, int64, bool).
pub fn num(field: u64, v: i64) -> Vec<u8> {
    [varint(field << 3), varint(v as u64)].concat()
}

/// A length-delimited field (string, bytes, message).
pub fn len(field: u64, bytes: &[u8]) -> Vec<u8> {
    [varint((field << 3) | 2), varint(bytes.len() as u64), bytes.to_vec()].concat()
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw}`.
pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [len(1, api_version.as_bytes()), len(2, kind.as_bytes())].concat();
    [b"k8s\x00".to_vec(), len(1, &type_meta), len(2, raw)].concat()
}
