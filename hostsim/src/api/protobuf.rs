//! Decoding of the protobuf bodies kubectl's typed clients send (`application/vnd.kubernetes.protobuf`,
//! a `runtime.Unknown` envelope after the `k8s\0` magic) into JSON, for the kinds kubectl's
//! generators create: Namespace, Secret, ConfigMap and ServiceAccount. Anything else is 415, and
//! client-go retries in JSON.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| Error::BadRequest("truncated protobuf".into()))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::BadRequest("bad protobuf varint".into()))
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Field::Fixed
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| Error::BadRequest("truncated protobuf".into()))?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            5 => {
                pos += 4;
                Field::Fixed
            }
            _ => return Err(Error::BadRequest("unsupported protobuf wire type".into())),
        };
        out.push((num, f));
    }
    Ok(out)
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `map<string, string>` (or bytes, base64-encoded as JSON does) entry.
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value)> {
    let mut k = String::new();
    let mut v = Value::String(String::new());
    for (num, f) in fields(b)? {
        if let Field::Bytes(b) = f {
            match num {
                1 => k = string(b),
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(b)),
                2 => v = json!(string(b)),
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn insert_entry(
    obj: &mut Map<String, Value>,
    key: &str,
    b: &[u8],
    bytes_value: bool,
) -> Result<()> {
    let (k, v) = map_entry(b, bytes_value)?;
    let m = obj.entry(key.to_string()).or_insert_with(|| json!({}));
    if let Some(m) = m.as_object_mut() {
        m.insert(k, v);
    }
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value> {
    let mut m = Map::new();
    for (num, f) in fields(b)? {
        match (num, f) {
            (1, Field::Bytes(b)) => {
                m.insert("name".into(), json!(string(b)));
            }
            (2, Field::Bytes(b)) => {
                m.insert("generateName".into(), json!(string(b)));
            }
            (3, Field::Bytes(b)) => {
                m.insert("namespace".into(), json!(string(b)));
            }
            (6, Field::Bytes(b)) => {
                m.insert("resourceVersion".into(), json!(string(b)));
            }
            (11, Field::Bytes(b)) => insert_entry(&mut m, "labels", b, false)?,
            (12, Field::Bytes(b)) => insert_entry(&mut m, "annotations", b, false)?,
            (14, Field::Bytes(b)) => {
                let list = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(string(b)));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn decode_kind(kind: &str, raw: &[u8]) -> Result<Value> {
    let mut obj = Map::new();
    for (num, f) in fields(raw)? {
        let Field::Bytes(b) = f else {
            if let (Field::Varint(v), true) =
                (&f, matches!((kind, num), ("Secret", 5) | ("ConfigMap", 4)))
            {
                obj.insert("immutable".into(), json!(*v != 0));
            }
            continue;
        };
        match (kind, num) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(b)?);
            }
            ("Secret", 2) => insert_entry(&mut obj, "data", b, true)?,
            ("Secret", 3) => {
                obj.insert("type".into(), json!(string(b)));
            }
            ("Secret", 4) => insert_entry(&mut obj, "stringData", b, false)?,
            ("ConfigMap", 2) => insert_entry(&mut obj, "data", b, false)?,
            ("ConfigMap", 3) => insert_entry(&mut obj, "binaryData", b, true)?,
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

/// Decodes a protobuf-encoded object of a supported kind.
pub fn decode(body: &[u8]) -> Result<Value> {
    let envelope = body.strip_prefix(b"k8s\x00").ok_or(Error::UnsupportedMediaType)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (num, f) in fields(envelope)? {
        match (num, f) {
            (1, Field::Bytes(tm)) => {
                for (n, f) in fields(tm)? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => api_version = string(b),
                        (2, Field::Bytes(b)) => kind = string(b),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if !matches!(kind.as_str(), "Namespace" | "Secret" | "ConfigMap" | "ServiceAccount") {
        return Err(Error::UnsupportedMediaType);
    }
    let mut obj = decode_kind(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_namespace_envelope() {
        let meta =
            [field(1, b"demo"), field(11, &[field(1, b"a"), field(2, b"b")].concat())].concat();
        let ns = field(1, &meta);
        let tm = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [b"k8s\x00".to_vec(), field(1, &tm), field(2, &ns)].concat();
        let v = decode(&body).ok();
        assert_eq!(
            v,
            Some(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"a": "b"}}})
            )
        );
    }
}
