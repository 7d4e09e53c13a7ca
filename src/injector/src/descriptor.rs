//! The fully qualified service names of a `FileDescriptorSet`, read straight from the
//! protobuf wire format (no protobuf library): the sidecar step uses them to check the
//! pod's `services` and, when the pod names none, to expose every service of the set.

/// Service names (`package.Service`) in file order, or why the bytes are not a set.
pub fn services(set: &[u8]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    if set.is_empty() {
        return Err("the descriptor set is empty".into());
    }
    for (num, value) in fields(set)? {
        if num != 1 {
            continue;
        }
        let Field::Bytes(file) = value else {
            return Err("FileDescriptorSet.file is not a message".into());
        };
        let mut package = String::new();
        let mut names = Vec::new();
        for (n, v) in fields(file)? {
            match (n, v) {
                (2, Field::Bytes(p)) => {
                    package = String::from_utf8(p.to_vec()).map_err(|_| "package name is not UTF-8")?
                }
                (6, Field::Bytes(svc)) => {
                    for (sn, sv) in fields(svc)? {
                        if let (1, Field::Bytes(name)) = (sn, sv) {
                            names.push(String::from_utf8(name.to_vec()).map_err(|_| "service name is not UTF-8")?);
                        }
                    }
                }
                _ => {}
            }
        }
        out.extend(names.into_iter().map(|n| if package.is_empty() { n } else { format!("{package}.{n}") }));
    }
    Ok(out)
}

enum Field<'a> {
    Varint,
    Fixed,
    Bytes(&'a [u8]),
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let bad = || "not a FileDescriptorSet (protobuf wire format does not parse)".to_string();
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let key = varint(buf, &mut i).ok_or_else(bad)?;
        let (num, wt) = (key >> 3, key & 7);
        if num == 0 {
            return Err(bad());
        }
        let f = match wt {
            0 => {
                varint(buf, &mut i).ok_or_else(bad)?;
                Field::Varint
            }
            1 | 5 => {
                let n = if wt == 1 { 8 } else { 4 };
                if buf.len() - i < n {
                    return Err(bad());
                }
                i += n;
                Field::Fixed
            }
            2 => {
                let n = varint(buf, &mut i).ok_or_else(bad)?;
                let n = usize::try_from(n).map_err(|_| bad())?;
                if buf.len() - i < n {
                    return Err(bad());
                }
                let s = &buf[i..i + n];
                i += n;
                Field::Bytes(s)
            }
            _ => return Err(bad()),
        };
        out.push((num, f));
    }
    Ok(out)
}

fn varint(buf: &[u8], i: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*i)?;
        *i += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![num << 3 | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn reads_services() {
        let svc = ld(1, b"Bookstore");
        let file = [ld(1, b"b.proto"), ld(2, b"bookstore.v1"), ld(6, &svc)].concat();
        let set = [ld(1, &file), ld(1, &[ld(1, b"x.proto"), ld(6, &ld(1, b"Bare"))].concat())].concat();
        assert_eq!(services(&set).unwrap(), vec!["bookstore.v1.Bookstore", "Bare"]);
    }

    #[test]
    fn refuses_garbage() {
        assert!(services(b"").is_err());
        assert!(services(b"\x0a\x05ab").is_err());
        assert!(services(b"hello world, not protobuf").is_err());
    }
}
