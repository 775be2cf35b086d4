//! D-Bus marshalling, little-endian, for the types systemd's API uses.

use std::fmt;

/// A D-Bus type, parsed from a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Byte,
    Bool,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Double,
    Str,
    Path,
    Signature,
    UnixFd,
    Variant,
    Array(Box<Type>),
    Struct(Vec<Type>),
    DictEntry(Box<Type>, Box<Type>),
}

/// A D-Bus value. Arrays carry their element type, so that an empty one
/// still has a signature.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Signature(String),
    UnixFd(u32),
    Variant(Box<Value>),
    Array(Type, Vec<Value>),
    Struct(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

/// A message that does not follow the wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed D-Bus data: {}", self.0)
    }
}

fn malformed<T>(message: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(message.into()))
}

impl Type {
    /// Parses a whole signature (zero or more complete types).
    pub fn parse_signature(sig: &str) -> Result<Vec<Type>, Malformed> {
        let bytes = sig.as_bytes();
        let mut pos = 0;
        let mut types = Vec::new();
        while pos < bytes.len() {
            types.push(Self::parse_one(bytes, &mut pos, 0)?);
        }
        Ok(types)
    }

    fn parse_one(sig: &[u8], pos: &mut usize, depth: usize) -> Result<Type, Malformed> {
        if depth > 32 {
            return malformed("signature nests too deeply");
        }
        let Some(&c) = sig.get(*pos) else {
            return malformed("signature ends inside a type");
        };
        *pos += 1;
        Ok(match c {
            b'y' => Type::Byte,
            b'b' => Type::Bool,
            b'n' => Type::I16,
            b'q' => Type::U16,
            b'i' => Type::I32,
            b'u' => Type::U32,
            b'x' => Type::I64,
            b't' => Type::U64,
            b'd' => Type::Double,
            b's' => Type::Str,
            b'o' => Type::Path,
            b'g' => Type::Signature,
            b'h' => Type::UnixFd,
            b'v' => Type::Variant,
            b'a' if sig.get(*pos) == Some(&b'{') => {
                *pos += 1;
                let key = Self::parse_one(sig, pos, depth + 1)?;
                let value = Self::parse_one(sig, pos, depth + 1)?;
                if sig.get(*pos) != Some(&b'}') {
                    return malformed("dict entry without '}'");
                }
                *pos += 1;
                Type::Array(Box::new(Type::DictEntry(Box::new(key), Box::new(value))))
            }
            b'a' => Type::Array(Box::new(Self::parse_one(sig, pos, depth + 1)?)),
            b'(' => {
                let mut fields = Vec::new();
                while sig.get(*pos) != Some(&b')') {
                    fields.push(Self::parse_one(sig, pos, depth + 1)?);
                }
                *pos += 1;
                if fields.is_empty() {
                    return malformed("empty struct");
                }
                Type::Struct(fields)
            }
            other => return malformed(format!("unknown type code {:?}", other as char)),
        })
    }

    /// The alignment of this type on the wire.
    fn alignment(&self) -> usize {
        match self {
            Type::Byte | Type::Signature | Type::Variant => 1,
            Type::I16 | Type::U16 => 2,
            Type::Bool
            | Type::I32
            | Type::U32
            | Type::Str
            | Type::Path
            | Type::UnixFd
            | Type::Array(_) => 4,
            Type::I64 | Type::U64 | Type::Double | Type::Struct(_) | Type::DictEntry(..) => 8,
        }
    }

    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.push_signature(&mut s);
        s
    }

    fn push_signature(&self, s: &mut String) {
        match self {
            Type::Byte => s.push('y'),
            Type::Bool => s.push('b'),
            Type::I16 => s.push('n'),
            Type::U16 => s.push('q'),
            Type::I32 => s.push('i'),
            Type::U32 => s.push('u'),
            Type::I64 => s.push('x'),
            Type::U64 => s.push('t'),
            Type::Double => s.push('d'),
            Type::Str => s.push('s'),
            Type::Path => s.push('o'),
            Type::Signature => s.push('g'),
            Type::UnixFd => s.push('h'),
            Type::Variant => s.push('v'),
            Type::Array(element) => {
                s.push('a');
                element.push_signature(s);
            }
            Type::Struct(fields) => {
                s.push('(');
                for field in fields {
                    field.push_signature(s);
                }
                s.push(')');
            }
            Type::DictEntry(key, value) => {
                s.push('{');
                key.push_signature(s);
                value.push_signature(s);
                s.push('}');
            }
        }
    }
}

impl Value {
    /// A string array (`as`).
    pub fn strings<S: AsRef<str>>(items: &[S]) -> Value {
        Value::Array(
            Type::Str,
            items
                .iter()
                .map(|s| Value::Str(s.as_ref().into()))
                .collect(),
        )
    }

    /// A byte array (`ay`).
    pub fn bytes(bytes: &[u8]) -> Value {
        Value::Array(Type::Byte, bytes.iter().map(|b| Value::Byte(*b)).collect())
    }

    pub fn type_of(&self) -> Type {
        match self {
            Value::Byte(_) => Type::Byte,
            Value::Bool(_) => Type::Bool,
            Value::I16(_) => Type::I16,
            Value::U16(_) => Type::U16,
            Value::I32(_) => Type::I32,
            Value::U32(_) => Type::U32,
            Value::I64(_) => Type::I64,
            Value::U64(_) => Type::U64,
            Value::Double(_) => Type::Double,
            Value::Str(_) => Type::Str,
            Value::Path(_) => Type::Path,
            Value::Signature(_) => Type::Signature,
            Value::UnixFd(_) => Type::UnixFd,
            Value::Variant(_) => Type::Variant,
            Value::Array(element, _) => Type::Array(Box::new(element.clone())),
            Value::Struct(fields) => Type::Struct(fields.iter().map(Value::type_of).collect()),
            Value::DictEntry(k, v) => Type::DictEntry(Box::new(k.type_of()), Box::new(v.type_of())),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Signature(s) => Some(s),
            Value::Variant(inner) => inner.as_str(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Byte(v) => Some(u64::from(*v)),
            Value::U16(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::Variant(inner) => inner.as_u64(),
            _ => None,
        }
    }
}

/// Writes values into a message body, aligning relative to its start (a
/// body starts 8-aligned in the message, so this is the message's alignment).
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, alignment: usize) {
        while !self.buf.len().is_multiple_of(alignment) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub fn value(&mut self, value: &Value) {
        match value {
            Value::Byte(v) => self.buf.push(*v),
            Value::Bool(v) => self.u32(u32::from(*v)),
            Value::I16(v) => {
                self.pad(2);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::U16(v) => {
                self.pad(2);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::I32(v) => {
                self.pad(4);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::U32(v) | Value::UnixFd(v) => self.u32(*v),
            Value::I64(v) => {
                self.pad(8);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::U64(v) => {
                self.pad(8);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Double(v) => {
                self.pad(8);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Signature(s) => self.signature(s),
            Value::Variant(inner) => {
                self.signature(&inner.type_of().signature());
                self.value(inner);
            }
            Value::Array(element, items) => {
                self.pad(4);
                let len_at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                // The length counts from the first element, after its padding.
                self.pad(element.alignment());
                let start = self.buf.len();
                for item in items {
                    self.value(item);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for field in fields {
                    self.value(field);
                }
            }
            Value::DictEntry(key, value) => {
                self.pad(8);
                self.value(key);
                self.value(value);
            }
        }
    }
}

/// Reads values of known types from a message body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn align(&mut self, alignment: usize) -> Result<(), Malformed> {
        let aligned = self.pos.div_ceil(alignment) * alignment;
        if aligned > self.buf.len() {
            return malformed("data ends in padding");
        }
        self.pos = aligned;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let Some(end) = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()) else {
            return malformed("data ends inside a value");
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        self.align(N)?;
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn text(&mut self, len: usize) -> Result<String, Malformed> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return malformed("string without its NUL");
        }
        String::from_utf8(bytes.to_vec()).or_else(|_| malformed("string is not UTF-8"))
    }

    pub fn value(&mut self, ty: &Type) -> Result<Value, Malformed> {
        self.value_at(ty, 0)
    }

    fn value_at(&mut self, ty: &Type, depth: usize) -> Result<Value, Malformed> {
        if depth > 64 {
            return malformed("value nests too deeply");
        }
        Ok(match ty {
            Type::Byte => Value::Byte(self.take(1)?[0]),
            Type::Bool => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => return malformed(format!("boolean {other}")),
            },
            Type::I16 => Value::I16(i16::from_le_bytes(self.fixed()?)),
            Type::U16 => Value::U16(u16::from_le_bytes(self.fixed()?)),
            Type::I32 => Value::I32(i32::from_le_bytes(self.fixed()?)),
            Type::U32 => Value::U32(self.u32()?),
            Type::UnixFd => Value::UnixFd(self.u32()?),
            Type::I64 => Value::I64(i64::from_le_bytes(self.fixed()?)),
            Type::U64 => Value::U64(u64::from_le_bytes(self.fixed()?)),
            Type::Double => Value::Double(f64::from_le_bytes(self.fixed()?)),
            Type::Str | Type::Path => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if *ty == Type::Str {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            Type::Signature => {
                let len = usize::from(self.take(1)?[0]);
                Value::Signature(self.text(len)?)
            }
            Type::Variant => {
                let len = usize::from(self.take(1)?[0]);
                let sig = self.text(len)?;
                let types = Type::parse_signature(&sig)?;
                let [inner] = types.as_slice() else {
                    return malformed(format!("variant signature {sig:?} is not one type"));
                };
                Value::Variant(Box::new(self.value_at(inner, depth + 1)?))
            }
            Type::Array(element) => {
                let len = self.u32()? as usize;
                self.align(element.alignment())?;
                let Some(end) = self.pos.checked_add(len).filter(|e| *e <= self.buf.len()) else {
                    return malformed("array longer than the data");
                };
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value_at(element, depth + 1)?);
                }
                if self.pos != end {
                    return malformed("array elements overrun its length");
                }
                Value::Array((**element).clone(), items)
            }
            Type::Struct(fields) => {
                self.align(8)?;
                let mut values = Vec::with_capacity(fields.len());
                for field in fields {
                    values.push(self.value_at(field, depth + 1)?);
                }
                Value::Struct(values)
            }
            Type::DictEntry(key, value) => {
                self.align(8)?;
                let key = self.value_at(key, depth + 1)?;
                let value = self.value_at(value, depth + 1)?;
                Value::DictEntry(Box::new(key), Box::new(value))
            }
        })
    }
}

/// Marshals `values` as a body; returns the bytes and their signature.
pub fn body(values: &[Value]) -> (Vec<u8>, String) {
    let mut w = Writer::default();
    let mut sig = String::new();
    for v in values {
        w.value(v);
        v.type_of().push_signature(&mut sig);
    }
    (w.buf, sig)
}

/// Reads a body of the given signature.
pub fn parse_body(bytes: &[u8], sig: &str) -> Result<Vec<Value>, Malformed> {
    let types = Type::parse_signature(sig)?;
    let mut r = Reader::new(bytes);
    types.iter().map(|t| r.value(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(values: Vec<Value>) {
        let (bytes, sig) = body(&values);
        assert_eq!(parse_body(&bytes, &sig).unwrap(), values, "signature {sig}");
    }

    #[test]
    fn basic_types_have_their_wire_form() {
        let (bytes, sig) = body(&[Value::Byte(7), Value::U32(0x01020304)]);
        assert_eq!(sig, "yu");
        assert_eq!(bytes, [7, 0, 0, 0, 4, 3, 2, 1]);
        let (bytes, sig) = body(&[Value::Str("ab".into())]);
        assert_eq!(sig, "s");
        assert_eq!(bytes, [2, 0, 0, 0, b'a', b'b', 0]);
        let (bytes, _) = body(&[Value::Bool(true), Value::U64(1)]);
        assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn array_length_excludes_the_padding_before_its_first_element() {
        // a(t): length (4 bytes), padding to 8, then one 8-byte struct.
        let v = Value::Array(
            Type::Struct(vec![Type::U64]),
            vec![Value::Struct(vec![Value::U64(5)])],
        );
        let (bytes, sig) = body(&[v]);
        assert_eq!(sig, "a(t)");
        assert_eq!(&bytes[..4], &8u32.to_le_bytes());
        assert_eq!(bytes.len(), 16);
        // An empty array still pads to its element's alignment.
        let (bytes, _) = body(&[Value::Array(Type::Struct(vec![Type::U64]), vec![])]);
        assert_eq!(bytes, [0; 8]);
    }

    #[test]
    fn variant_carries_its_signature() {
        let (bytes, sig) = body(&[Value::Variant(Box::new(Value::U64(3)))]);
        assert_eq!(sig, "v");
        assert_eq!(&bytes[..3], &[1, b't', 0]);
        assert_eq!(bytes.len(), 16);
    }

    #[test]
    fn systemd_shapes_roundtrip() {
        let prop = |name: &str, v: Value| {
            Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
        };
        let props = Value::Array(
            Type::Struct(vec![Type::Str, Type::Variant]),
            vec![
                prop("Delegate", Value::Bool(true)),
                prop("PIDs", Value::Array(Type::U32, vec![Value::U32(42)])),
                prop("MemoryMax", Value::U64(1 << 30)),
                prop("AllowedCPUs", Value::bytes(&[0b101])),
                prop(
                    "DeviceAllow",
                    Value::Array(
                        Type::Struct(vec![Type::Str, Type::Str]),
                        vec![Value::Struct(vec![
                            Value::Str("/dev/null".into()),
                            Value::Str("rwm".into()),
                        ])],
                    ),
                ),
                prop(
                    "Weights",
                    Value::Array(Type::Struct(vec![Type::Str, Type::U64]), vec![]),
                ),
                prop("Names", Value::strings(&["a", "bc"])),
                prop("Nice", Value::I32(-3)),
            ],
        );
        let aux = Value::Array(
            Type::Struct(vec![
                Type::Str,
                Type::Array(Box::new(Type::Struct(vec![Type::Str, Type::Variant]))),
            ]),
            vec![],
        );
        roundtrip(vec![
            Value::Str("runc-x.scope".into()),
            Value::Str("replace".into()),
            props,
            aux,
        ]);
        roundtrip(vec![
            Value::U32(9),
            Value::Path("/org/freedesktop/systemd1/job/9".into()),
            Value::Str("u.scope".into()),
            Value::Str("done".into()),
        ]);
    }

    #[test]
    fn signatures_parse() {
        let types = Type::parse_signature("sa(sv)a{sv}a(sa(sv))").unwrap();
        assert_eq!(types.len(), 4);
        assert_eq!(types[2].signature(), "a{sv}");
        assert!(Type::parse_signature("a").is_err());
        assert!(Type::parse_signature("(").is_err());
        assert!(Type::parse_signature("z").is_err());
    }

    #[test]
    fn truncated_data_is_refused() {
        let (bytes, sig) = body(&[Value::Str("hello".into())]);
        assert!(parse_body(&bytes[..6], &sig).is_err());
        let mut bad = bytes.clone();
        bad[0] = 200;
        assert!(parse_body(&bad, &sig).is_err());
    }
}
