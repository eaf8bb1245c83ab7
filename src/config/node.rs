//! A YAML document as a tree that remembers the line of every key and value.
//!
//! serde stops at the first error it meets. To report *every* mistake in a
//! config, the file is first read (by serde-saphyr, so YAML itself is never
//! parsed by hand) into this tree; each section element is then deserialized on
//! its own, and every error — structural or semantic — is given the line of
//! the deepest node its key path reaches.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node with the (1-based) line where it was defined.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// 1-based line of the node in the file.
    pub line: u64,
    /// The node's value.
    pub kind: Kind,
}

/// The value of a [`Node`].
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order: key, line of the key, value.
    Map(Vec<(String, u64, Node)>),
}

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A key path such as `listeners[0].hosts[1].clientAuth.mode`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// A path with `seg` appended.
    pub(crate) fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.to_string()));
        KeyPath(v)
    }

    /// A path with index `i` appended.
    pub(crate) fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        KeyPath(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Node {
    /// The line of the deepest node that `path` reaches (a key's own line when
    /// the path ends on a key).
    pub(crate) fn line_of(&self, path: &KeyPath) -> u64 {
        let mut node = self;
        let mut line = self.line;
        for seg in &path.0 {
            match (seg, &node.kind) {
                (Segment::Key(k), Kind::Map(entries)) => {
                    match entries.iter().find(|(key, _, _)| key == k) {
                        Some((_, key_line, value)) => {
                            line = *key_line;
                            node = value;
                        }
                        None => return line,
                    }
                }
                (Segment::Index(i), Kind::Seq(items)) => match items.get(*i) {
                    Some(item) => {
                        line = item.line;
                        node = item;
                    }
                    None => return line,
                },
                _ => return line,
            }
        }
        line
    }

    /// Every key that appears twice in one mapping: its path, the line of the
    /// repeat and the line of the first occurrence.
    pub(crate) fn duplicates(&self) -> Vec<(KeyPath, u64, u64)> {
        let mut out = Vec::new();
        self.collect_duplicates(&KeyPath::default(), &mut out);
        out
    }

    fn collect_duplicates(&self, at: &KeyPath, out: &mut Vec<(KeyPath, u64, u64)>) {
        match &self.kind {
            Kind::Map(entries) => {
                for (i, (k, line, v)) in entries.iter().enumerate() {
                    if let Some((_, first, _)) = entries[..i].iter().find(|(prev, _, _)| prev == k)
                    {
                        out.push((at.key(k), *line, *first));
                    }
                    v.collect_duplicates(&at.key(k), out);
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.collect_duplicates(&at.index(i), out);
                }
            }
            _ => {}
        }
    }

    /// The node as JSON, so serde can deserialize one part of the tree at a time.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::UInt(u) => Value::from(*u),
            Kind::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned: Spanned<Kind> = Spanned::deserialize(d)?;
        Ok(Node {
            line: spanned.referenced.line(),
            kind: spanned.value,
        })
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(if v >= 0 {
            Kind::UInt(v as u64)
        } else {
            Kind::Int(v)
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries: Vec<(String, u64, Node)> = Vec::new();
        // Duplicates are kept here and reported by validation (with every
        // other mistake) rather than aborting the parse.
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.value, key.referenced.line(), value));
        }
        Ok(Kind::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}
