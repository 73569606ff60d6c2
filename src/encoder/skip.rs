//! Walking Avro binary data by its schema without building values: where a field's bytes start
//! and end. `rowferry verify` uses it to take the `after` image's bytes out of an envelope and
//! compare them with the bytes the encoder writes for a row — no value tree, no text.
//!
//! Invariants: a [`Plan`] is compiled once per writer schema (named types resolved, recursion
//! refused); [`Plan::skip`] never reads past its input and reports malformed data (a length or
//! count that is negative or runs past the end, a union branch that does not exist) as an error.

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};
use std::collections::HashMap;

/// How to step over one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Zero bytes (null).
    Nothing,
    /// A zig-zag varint (int, long, enum, date, times, timestamps).
    Varint,
    /// Exactly n bytes (boolean, float, double, fixed, duration).
    Fixed(usize),
    /// A length varint and that many bytes (bytes, string, decimal, uuid, big-decimal).
    Sized,
    Union(Vec<Plan>),
    Record(Vec<Plan>),
    /// Blocks of items until a zero count (a negative count is followed by the block's size).
    Array(Box<Plan>),
    Map(Box<Plan>),
}

/// Why bytes or a schema could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipError {
    #[error("the data ends inside a value")]
    Truncated,
    #[error("a varint is longer than 10 bytes")]
    Varint,
    #[error("a negative length or count ({0})")]
    Negative(i64),
    #[error("union branch {0} does not exist")]
    Branch(i64),
    #[error("schema: {0}")]
    Schema(String),
}

impl SkipError {
    pub fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Fatal
    }
}

/// Reads one zig-zag varint at `*at`.
pub fn varint(data: &[u8], at: &mut usize) -> Result<i64, SkipError> {
    let mut value: u64 = 0;
    for shift in 0..10 {
        let byte = *data.get(*at).ok_or(SkipError::Truncated)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(SkipError::Varint)
}

fn advance(data: &[u8], at: &mut usize, n: i64) -> Result<(), SkipError> {
    let n = usize::try_from(n).map_err(|_| SkipError::Negative(n))?;
    let end = at.checked_add(n).filter(|&end| end <= data.len()).ok_or(SkipError::Truncated)?;
    *at = end;
    Ok(())
}

/// The plans of a record schema's fields, in order (named types defined in earlier fields
/// resolve in later ones).
pub fn fields(schema: &Schema) -> Result<Vec<(String, Plan)>, SkipError> {
    let Schema::Record(record) = schema else { return Err(SkipError::Schema("not a record".into())) };
    let mut compiler = Compiler::default();
    compiler.named.insert(record.name.clone(), None);
    record.fields.iter().map(|f| Ok((f.name.clone(), compiler.plan(&f.schema)?))).collect()
}

impl Plan {
    /// The plan of `schema`, a complete schema (its named types defined inside it).
    pub fn compile(schema: &Schema) -> Result<Plan, SkipError> {
        Compiler::default().plan(schema)
    }

    /// Steps over one value starting at `*at`.
    pub fn skip(&self, data: &[u8], at: &mut usize) -> Result<(), SkipError> {
        match self {
            Plan::Nothing => Ok(()),
            Plan::Varint => varint(data, at).map(drop),
            Plan::Fixed(n) => advance(data, at, *n as i64),
            Plan::Sized => {
                let n = varint(data, at)?;
                advance(data, at, n)
            }
            Plan::Union(branches) => {
                let i = varint(data, at)?;
                let branch = usize::try_from(i).ok().and_then(|i| branches.get(i)).ok_or(SkipError::Branch(i))?;
                branch.skip(data, at)
            }
            Plan::Record(fields) => fields.iter().try_for_each(|f| f.skip(data, at)),
            Plan::Array(item) => blocks(data, at, |data, at| item.skip(data, at)),
            Plan::Map(value) => blocks(data, at, |data, at| {
                Plan::Sized.skip(data, at)?;
                value.skip(data, at)
            }),
        }
    }
}

fn blocks(
    data: &[u8],
    at: &mut usize,
    mut item: impl FnMut(&[u8], &mut usize) -> Result<(), SkipError>,
) -> Result<(), SkipError> {
    loop {
        let mut count = varint(data, at)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            count = count.checked_neg().ok_or(SkipError::Negative(count))?;
            varint(data, at)?; // the block's size in bytes
        }
        for _ in 0..count {
            item(data, at)?;
        }
    }
}

#[derive(Default)]
struct Compiler {
    /// Named types compiled so far; `None` while one is being compiled (a reference to it then
    /// is recursion, which row schemas never have).
    named: HashMap<Name, Option<Plan>>,
}

impl Compiler {
    fn plan(&mut self, schema: &Schema) -> Result<Plan, SkipError> {
        Ok(match schema {
            Schema::Null => Plan::Nothing,
            Schema::Boolean => Plan::Fixed(1),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Plan::Varint,
            Schema::Float => Plan::Fixed(4),
            Schema::Double => Plan::Fixed(8),
            Schema::Bytes | Schema::String | Schema::BigDecimal => Plan::Sized,
            Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => Plan::Sized,
            Schema::Uuid(UuidSchema::Fixed(f)) => self.named(&f.name, Plan::Fixed(f.size))?,
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Plan::Sized,
                InnerDecimalSchema::Fixed(f) => self.named(&f.name, Plan::Fixed(f.size))?,
            },
            Schema::Duration(f) => self.named(&f.name, Plan::Fixed(12))?,
            Schema::Fixed(f) => self.named(&f.name, Plan::Fixed(f.size))?,
            Schema::Enum(e) => self.named(&e.name, Plan::Varint)?,
            Schema::Array(a) => Plan::Array(Box::new(self.plan(&a.items)?)),
            Schema::Map(m) => Plan::Map(Box::new(self.plan(&m.types)?)),
            Schema::Union(u) => Plan::Union(u.variants().iter().map(|v| self.plan(v)).collect::<Result<_, _>>()?),
            Schema::Record(r) => {
                self.named.insert(r.name.clone(), None);
                let fields = r.fields.iter().map(|f| self.plan(&f.schema)).collect::<Result<Vec<_>, _>>()?;
                let plan = Plan::Record(fields);
                self.named.insert(r.name.clone(), Some(plan.clone()));
                plan
            }
            Schema::Ref { name } => match self.named.get(name) {
                Some(Some(plan)) => plan.clone(),
                Some(None) => return Err(SkipError::Schema(format!("{name} refers to itself"))),
                None => return Err(SkipError::Schema(format!("{name} is not defined before its use"))),
            },
        })
    }

    fn named(&mut self, name: &Name, plan: Plan) -> Result<Plan, SkipError> {
        self.named.insert(name.clone(), Some(plan.clone()));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    const SCHEMA: &str = r#"{"type": "record", "name": "Envelope", "namespace": "t", "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Row", "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": ["null", "string"]},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "flag", "type": "boolean"},
            {"name": "ratio", "type": "double"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "int"}},
            {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["red", "green"]}},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 3}},
            {"name": "f", "type": "float"}
        ]}]},
        {"name": "after", "type": ["null", "Row"]},
        {"name": "op", "type": "string"}
    ]}"#;

    fn row(id: i64) -> Value {
        Value::Record(vec![
            ("id".into(), Value::Long(id)),
            ("name".into(), Value::Union(1, Box::new(Value::String(format!("name {id} ☃"))))),
            ("price".into(), Value::Decimal(apache_avro::Decimal::from(vec![0x01, 0xff]))),
            ("flag".into(), Value::Boolean(true)),
            ("ratio".into(), Value::Double(0.5)),
            ("tags".into(), Value::Array(vec![Value::String("a".into()), Value::String("bc".into())])),
            ("attrs".into(), Value::Map([("k".to_string(), Value::Int(-7))].into_iter().collect())),
            ("color".into(), Value::Enum(1, "green".into())),
            ("hash".into(), Value::Fixed(3, vec![1, 2, 3])),
            ("f".into(), Value::Float(1.5)),
        ])
    }

    fn encoded(schema: &Schema, value: Value) -> Vec<u8> {
        crate::encoder::datum::encode(schema, value).expect("encode")
    }

    #[test]
    fn finds_the_after_image_bytes_behind_a_before_image() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let Schema::Record(envelope) = &schema else { panic!("record") };
        let Schema::Union(before_union) = &envelope.fields[0].schema else { panic!("before is a union") };
        let row_schema = &before_union.variants()[1];
        let mut compiler = Compiler::default();
        let before = compiler.plan(&envelope.fields[0].schema).expect("before");
        let after = compiler.plan(&envelope.fields[1].schema).expect("after resolves Row");
        let value = Value::Record(vec![
            ("before".into(), Value::Union(1, Box::new(row(1)))),
            ("after".into(), Value::Union(1, Box::new(row(2)))),
            ("op".into(), Value::String("u".into())),
        ]);
        let data = encoded(&schema, value);
        let mut at = 0;
        before.skip(&data, &mut at).expect("skip before");
        assert_eq!(varint(&data, &mut at), Ok(1), "after's union branch");
        let start = at;
        let Plan::Union(branches) = &after else { panic!("union") };
        branches[1].skip(&data, &mut at).expect("skip after");
        assert_eq!(&data[start..at], encoded(row_schema, row(2)).as_slice());
        assert_eq!(Plan::Sized.skip(&data, &mut at), Ok(()));
        assert_eq!(at, data.len());
        // Every cut is an error, never a panic or a read past the end.
        for cut in 0..data.len() {
            let mut at = 0;
            let whole = Plan::compile(&schema).expect("plan");
            assert!(whole.skip(&data[..cut], &mut at).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn malformed_data_is_an_error() {
        let union = Plan::Union(vec![Plan::Nothing, Plan::Varint]);
        assert_eq!(union.skip(&[4], &mut 0), Err(SkipError::Branch(2)));
        assert_eq!(Plan::Sized.skip(&[1], &mut 0), Err(SkipError::Negative(-1)));
        assert_eq!(Plan::Varint.skip(&[0xff; 11], &mut 0), Err(SkipError::Varint));
        assert_eq!(Plan::Array(Box::new(Plan::Varint)).skip(&[2, 2], &mut 0), Err(SkipError::Truncated));
    }
}
