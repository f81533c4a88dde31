//! Argument checks as QEMU's QObject input visitor makes them, on any
//! [`TypeModel`]: [`CheckError`] and its QEMU texts.
//!
//! Order, as QEMU's generated visitors: an object's members in schema
//! order (a union's base members, then the members of the variant its tag
//! selects), each checked in depth before the next; then the object's
//! members that are no member of it (unexpected). The first problem is the
//! answer. Texts (`desc` of QEMU's `GenericError`), with the member path
//! QEMU prints (`file.size`, `enable[0]`, `a[2].b`):
//!
//! * `Parameter 'PATH' is missing`
//! * `Parameter 'PATH' is unexpected`
//! * `Invalid parameter type for 'PATH', expected: TYPE` (`string`,
//!   `integer`, `number`, `boolean`, `null`, `object`, `array`; for an
//!   alternate the alternate's name after the member's own name, `null` in
//!   a list, as QEMU)
//! * `Parameter 'NAME' does not accept value 'VALUE'` (QEMU names the
//!   member alone here, `null` in a list)
//!
//! What introspection does not tell, and so is not checked: integer
//! ranges (every integer type introspects as `int`: `uint8` 300 passes
//! here, QEMU says `Parameter 'x' expects uint8`), and QEMU's special
//! cases of `uint64` (negative values taken) and `size` (not). When
//! several members are unexpected QEMU names the first in its hash table's
//! order; this names the first in input order.

use super::model::{SchemaModel, Shape, TypeModel};
use super::{JsonType, Lookup, Name, MAX_CHECK_DEPTH};
use crate::json::{JsonKind, JsonStr, Members, RawJson};
use core::fmt;

/// What went wrong ([`CheckError::kind`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckErrorKind<'s> {
    /// A required member is absent.
    Missing {
        /// The member.
        member: Name<'s>,
    },
    /// A member the type does not have.
    Unexpected,
    /// A value of the wrong JSON type.
    WrongType {
        /// What the type takes.
        expected: Expected<'s>,
    },
    /// A string that is not one of the enum's values.
    NotInEnum,
    /// No such command.
    UnknownCommand,
    /// The schema names a type it does not have (or a command without
    /// arguments type).
    BrokenSchema,
    /// Types nested deeper than [`MAX_CHECK_DEPTH`].
    TooDeep,
}

/// What a type takes, in QEMU's words.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected<'s> {
    /// `string` (strings and enums).
    String,
    /// `integer`.
    Integer,
    /// `number`.
    Number,
    /// `boolean`.
    Boolean,
    /// `null`.
    Null,
    /// `object`.
    Object,
    /// `array`.
    Array,
    /// A branch of this alternate.
    Alternate(Name<'s>),
}

impl Expected<'_> {
    /// QEMU's word for it (an alternate's name for alternates).
    fn write(&self, put: &mut dyn FnMut(&str)) {
        put(match self {
            Expected::String => "string",
            Expected::Integer => "integer",
            Expected::Number => "number",
            Expected::Boolean => "boolean",
            Expected::Null => "null",
            Expected::Object => "object",
            Expected::Array => "array",
            Expected::Alternate(name) => return name.write_lossy(put),
        })
    }
}

/// Arguments that do not fit a command's argument type: what is wrong,
/// and where (an offset into the arguments, walked again for the path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckError<'a, 's> {
    kind: CheckErrorKind<'s>,
    args: RawJson<'a>,
    at: usize,
    command: Option<&'a str>,
}

impl<'a, 's> CheckError<'a, 's> {
    /// What is wrong.
    pub const fn kind(&self) -> CheckErrorKind<'s> {
        self.kind
    }

    /// The path from the arguments to the value concerned (for
    /// [`CheckErrorKind::Missing`], to the object that lacks the member).
    pub fn path(&self) -> Segments<'a> {
        Segments {
            cur: Some(self.args),
            args: self.args,
            at: self.at,
        }
    }

    /// The value concerned (for [`CheckErrorKind::Missing`], the object
    /// that lacks the member).
    pub fn value(&self) -> Option<RawJson<'a>> {
        self.args.value_at(self.at)
    }

    /// QEMU's error class for it: `CommandNotFound` for an unknown
    /// command, else `GenericError`.
    pub const fn class(&self) -> &'static str {
        match self.kind {
            CheckErrorKind::UnknownCommand => "CommandNotFound",
            _ => "GenericError",
        }
    }

    /// Writes the path as QEMU does (`a[2].b`), `member` appended.
    fn write_path(&self, put: &mut dyn FnMut(&str), member: Option<&Name<'_>>) {
        let mut first = true;
        for seg in self.path() {
            match seg {
                Segment::Member(k) => {
                    if !first {
                        put(".");
                    }
                    k.write_lossy(put);
                }
                Segment::Index(i) => {
                    put("[");
                    write_usize(put, i);
                    put("]");
                }
            }
            first = false;
        }
        if let Some(m) = member {
            if !first {
                put(".");
            }
            m.write_lossy(put);
        }
    }

    /// Writes the member's own name, `null` for a list element (QEMU's
    /// `name ? name : "null"`).
    fn write_bare(&self, put: &mut dyn FnMut(&str)) {
        match self.path().last() {
            Some(Segment::Member(k)) => k.write_lossy(put),
            _ => put("null"),
        }
    }

    /// Writes QEMU's `desc` for the error (what `Display` writes) as
    /// pieces of UTF-8 text, without `core::fmt`.
    pub fn write_desc(&self, put: &mut dyn FnMut(&str)) {
        match self.kind {
            CheckErrorKind::Missing { member } => {
                put("Parameter '");
                self.write_path(put, Some(&member));
                put("' is missing");
            }
            CheckErrorKind::Unexpected => {
                put("Parameter '");
                self.write_path(put, None);
                put("' is unexpected");
            }
            CheckErrorKind::WrongType { expected } => {
                put("Invalid parameter type for '");
                match expected {
                    Expected::Alternate(_) => self.write_bare(put),
                    _ => self.write_path(put, None),
                }
                put("', expected: ");
                expected.write(put);
            }
            CheckErrorKind::NotInEnum => {
                put("Parameter '");
                self.write_bare(put);
                put("' does not accept value '");
                if let Some(s) = self.value().and_then(|v| v.as_json_str()) {
                    s.write_lossy(put);
                }
                put("'");
            }
            CheckErrorKind::UnknownCommand => {
                put("The command ");
                put(self.command.unwrap_or(""));
                put(" has not been found");
            }
            CheckErrorKind::BrokenSchema => put("the schema names a type it lacks"),
            CheckErrorKind::TooDeep => put("types nested too deep to check"),
        }
    }
}

/// `v` in decimal.
fn write_usize(put: &mut dyn FnMut(&str), mut v: usize) {
    const DIGITS: &str = "0123456789";
    let mut digits = [0u8; 20];
    let mut n = 0;
    while let Some(d) = digits.get_mut(n) {
        *d = (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in digits.get(..n).unwrap_or_default().iter().rev() {
        let d = usize::from(d);
        put(DIGITS.get(d..d + 1).unwrap_or("0"));
    }
}

/// QEMU's `desc` for the error.
impl fmt::Display for CheckError<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut r = Ok(());
        self.write_desc(&mut |s| r = r.and_then(|()| f.write_str(s)));
        r
    }
}

impl core::error::Error for CheckError<'_, '_> {}

#[cfg(feature = "defmt")]
impl defmt::Format for CheckError<'_, '_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "CheckError(at {=usize})", self.at)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for CheckErrorKind<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let s = match self {
            CheckErrorKind::Missing { .. } => "Missing",
            CheckErrorKind::Unexpected => "Unexpected",
            CheckErrorKind::WrongType { .. } => "WrongType",
            CheckErrorKind::NotInEnum => "NotInEnum",
            CheckErrorKind::UnknownCommand => "UnknownCommand",
            CheckErrorKind::BrokenSchema => "BrokenSchema",
            CheckErrorKind::TooDeep => "TooDeep",
        };
        defmt::write!(f, "{=str}", s)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Expected<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Expected")
    }
}

/// One step of a member path.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// An object member.
    Member(JsonStr<'a>),
    /// An array element.
    Index(usize),
}

/// Iterator over the path of a [`CheckError`], from the arguments down.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    cur: Option<RawJson<'a>>,
    args: RawJson<'a>,
    at: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let cur = self.cur?;
        let args = self.args;
        let at = self.at;
        let contains = |v: &RawJson<'_>| {
            args.offset_of(v)
                .is_some_and(|o| o <= at && at < o + v.as_bytes().len())
        };
        if args.offset_of(&cur) == Some(at) {
            self.cur = None;
            return None;
        }
        let step = match cur.kind() {
            JsonKind::Object => cur
                .members()
                .find(|(_, v)| contains(v))
                .map(|(k, v)| (Segment::Member(k), v)),
            JsonKind::Array => cur
                .elements()
                .enumerate()
                .find(|(_, v)| contains(v))
                .map(|(i, v)| (Segment::Index(i), v)),
            _ => None,
        };
        self.cur = step.map(|(_, v)| v);
        step.map(|(s, _)| s)
    }
}

/// A problem found, before it is tied to the arguments.
struct Fail<'a, 's> {
    kind: CheckErrorKind<'s>,
    at: RawJson<'a>,
}

type Checked<'a, 's> = Result<(), Fail<'a, 's>>;

fn fail<'a, 's>(kind: CheckErrorKind<'s>, at: RawJson<'a>) -> Checked<'a, 's> {
    Err(Fail { kind, at })
}

/// Checks `arguments` (absent: `{}`) against the object type `ty` of
/// model `m`.
///
/// # Errors
/// The first problem, in QEMU's order.
pub fn check_arguments<'a, 's, M: TypeModel<'s>>(
    m: &M,
    ty: M::Ty,
    arguments: Option<RawJson<'a>>,
) -> Result<(), CheckError<'a, 's>> {
    let args = arguments.unwrap_or(RawJson::from_validated(b"{}"));
    value(m, ty, args, 0).map_err(|f| CheckError {
        kind: f.kind,
        args,
        at: args.offset_of(&f.at).unwrap_or(0),
        command: None,
    })
}

/// [`Lookup::check`].
pub(crate) fn check_command<'a, 's, L: Lookup<'s>>(
    lookup: &L,
    command: &'a str,
    arguments: Option<RawJson<'a>>,
) -> Result<(), CheckError<'a, 's>> {
    let args = arguments.unwrap_or(RawJson::from_validated(b"{}"));
    let err = |kind| CheckError {
        kind,
        args,
        at: 0,
        command: Some(command),
    };
    let cmd = lookup
        .command(command)
        .ok_or(err(CheckErrorKind::UnknownCommand))?;
    let arg_type = cmd.arg_type().ok_or(err(CheckErrorKind::BrokenSchema))?;
    check_arguments(&SchemaModel(lookup), arg_type, Some(args))
}

/// Whether a number token is an integer QEMU's parser keeps as one (no
/// fraction or exponent, within `i64` or `u64`).
fn is_integer(v: &RawJson<'_>) -> bool {
    v.as_i64().is_some() || v.as_u64().is_some()
}

/// Checks one value of type `ty`.
fn value<'a, 's, M: TypeModel<'s>>(
    m: &M,
    ty: M::Ty,
    v: RawJson<'a>,
    depth: usize,
) -> Checked<'a, 's> {
    if depth >= MAX_CHECK_DEPTH {
        return fail(CheckErrorKind::TooDeep, v);
    }
    let Some(shape) = m.shape(ty) else {
        return fail(CheckErrorKind::BrokenSchema, v);
    };
    let kind = v.kind();
    let wrong = |expected| fail(CheckErrorKind::WrongType { expected }, v);
    match shape {
        Shape::Builtin(t) => match t {
            JsonType::String if kind != JsonKind::String => wrong(Expected::String),
            JsonType::Int if kind != JsonKind::Number || !is_integer(&v) => {
                wrong(Expected::Integer)
            }
            JsonType::Number if kind != JsonKind::Number => wrong(Expected::Number),
            JsonType::Boolean if kind != JsonKind::Bool => wrong(Expected::Boolean),
            JsonType::Null if kind != JsonKind::Null => wrong(Expected::Null),
            JsonType::Object if kind != JsonKind::Object => wrong(Expected::Object),
            JsonType::Array if kind != JsonKind::Array => wrong(Expected::Array),
            _ => Ok(()),
        },
        Shape::Enum(mut values) => {
            let Some(s) = v.as_json_str() else {
                return wrong(Expected::String);
            };
            if values.any(|n| Name::Json(s).eq_name(&n)) {
                Ok(())
            } else {
                fail(CheckErrorKind::NotInEnum, v)
            }
        }
        Shape::Array(element) => {
            if kind != JsonKind::Array {
                return wrong(Expected::Array);
            }
            for e in v.elements() {
                value(m, element, e, depth + 1)?;
            }
            Ok(())
        }
        Shape::Object { members: base, tag } => {
            if kind != JsonKind::Object {
                return wrong(Expected::Object);
            }
            // The member lists that apply (the base, the variant the tag
            // selects, its variant ...), each resolved once.
            let mut chain: heapless::Vec<M::Members, 4> = heapless::Vec::new();
            let (mut cur, mut list, mut tag) = (ty, base, tag);
            let mut cut = false;
            let mut steps = 0usize;
            loop {
                steps += 1;
                members(m, list.clone(), v, depth)?;
                if chain.push(list).is_err() {
                    cut = true;
                }
                let Some(next) = selected(m, cur, tag, &v) else {
                    break;
                };
                if depth + steps >= MAX_CHECK_DEPTH {
                    return fail(CheckErrorKind::TooDeep, v);
                }
                let Some(Shape::Object { members: l, tag: t }) = m.shape(next) else {
                    return fail(CheckErrorKind::BrokenSchema, v);
                };
                (cur, list, tag) = (next, l, t);
            }
            // Then what no member of the type (or its variant) claims.
            for (k, val) in v.members() {
                let claimed = chain
                    .iter()
                    .any(|l| l.clone().any(|mem| Name::Json(k).eq_name(&mem.name)))
                    || (cut && claims(m, ty, &v, k, depth));
                if !claimed {
                    return fail(CheckErrorKind::Unexpected, val);
                }
            }
            Ok(())
        }
        Shape::Alternate(branches) => {
            let mut chosen = None;
            for b in branches {
                if fits_kind(m, b, kind) {
                    chosen = Some(b);
                    break;
                }
            }
            match chosen {
                Some(b) => value(m, b, v, depth + 1),
                None => wrong(Expected::Alternate(m.label(ty))),
            }
        }
    }
}

/// Whether an alternate branch of type `ty` is the one for JSON of `kind`
/// (QEMU picks the branch by the value's QType).
fn fits_kind<'s, M: TypeModel<'s>>(m: &M, ty: M::Ty, kind: JsonKind) -> bool {
    match m.shape(ty) {
        Some(Shape::Builtin(t)) => matches!(
            (t, kind),
            (JsonType::String, JsonKind::String)
                | (JsonType::Int | JsonType::Number, JsonKind::Number)
                | (JsonType::Boolean, JsonKind::Bool)
                | (JsonType::Null, JsonKind::Null)
                | (JsonType::Object, JsonKind::Object)
                | (JsonType::Array, JsonKind::Array)
                | (JsonType::Value, _)
        ),
        Some(Shape::Enum(_)) => kind == JsonKind::String,
        Some(Shape::Array(_)) => kind == JsonKind::Array,
        Some(Shape::Object { .. }) => kind == JsonKind::Object,
        Some(Shape::Alternate(_)) | None => false,
    }
}

/// The value of member `name` of object `v`.
fn get<'a>(v: &RawJson<'a>, name: &Name<'_>) -> Option<RawJson<'a>> {
    let mut it: Members<'a> = v.members();
    it.find(|(k, _)| Name::Json(*k).eq_name(name))
        .map(|(_, v)| v)
}

/// Checks the members `list` of an object type in `v`.
fn members<'a, 's, M: TypeModel<'s>>(
    m: &M,
    list: M::Members,
    v: RawJson<'a>,
    depth: usize,
) -> Checked<'a, 's> {
    for member in list {
        match get(&v, &member.name) {
            None if member.optional => {}
            None => {
                return fail(
                    CheckErrorKind::Missing {
                        member: member.name,
                    },
                    v,
                )
            }
            Some(val) => value(m, member.ty, val, depth + 1)?,
        }
    }
    Ok(())
}

/// The variant type `v`'s tag selects in union `ty` (tag member `tag`).
fn selected<'s, M: TypeModel<'s>>(
    m: &M,
    ty: M::Ty,
    tag: Option<Name<'s>>,
    v: &RawJson<'_>,
) -> Option<M::Ty> {
    let case = get(v, &tag?)?.as_json_str()?;
    m.variant(ty, case)
}

/// Whether member `key` of `v` belongs to object type `ty` (its base or
/// the variant `v`'s tag selects).
fn claims<'s, M: TypeModel<'s>>(
    m: &M,
    ty: M::Ty,
    v: &RawJson<'_>,
    key: JsonStr<'_>,
    depth: usize,
) -> bool {
    if depth >= MAX_CHECK_DEPTH {
        return false;
    }
    let Some(Shape::Object { mut members, tag }) = m.shape(ty) else {
        return false;
    };
    if members.any(|mem| Name::Json(key).eq_name(&mem.name)) {
        return true;
    }
    let Some(case) = tag.and_then(|t| get(v, &t)).and_then(|t| t.as_json_str()) else {
        return false;
    };
    m.variant(ty, case)
        .is_some_and(|variant| claims(m, variant, v, key, depth + 1))
}
