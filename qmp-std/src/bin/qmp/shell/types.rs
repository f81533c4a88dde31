//! Walking a command's argument type in the live schema, for typing
//! `key=value` words (`args.rs`), completing them (`complete.rs`) and
//! printing the argument tree (`help.rs`).
//!
//! A type is its name in the schema ([`Ty`]); its shape comes from
//! qmp-core's [`SchemaModel`] (the model the argument checker runs on), so
//! there is one reading of the schema. What the shell adds is the walk by
//! member path: the members of an object are its own plus those of the
//! union variant its tag selects — and the tag's value is whatever the user
//! gave at that level ([`Level`]), in any order on the line.

use qmp_core::json::JsonStr;
use qmp_core::schema::model::{MemberShape, SchemaModel, Shape, TypeModel};
use qmp_core::schema::{JsonType, Kind, Lookup, MAX_CHECK_DEPTH};

/// A type: its (masked) name in the schema.
pub type Ty<'s> = JsonStr<'s>;

/// A member of an object type.
pub type Member<'s> = MemberShape<'s, Ty<'s>>;

/// What the user gave at one level of the arguments: enough to pick union
/// variants (the tag's value) and to go down a member.
pub trait Level: Sized {
    /// The string value of member `name` at this level, if it has one.
    fn string(&self, name: &str) -> Option<String>;
    /// Member `name` (or element `name` of a list) at this level.
    fn child(&self, name: &str) -> Option<&Self>;
}

/// A level where nothing was given.
pub struct Nothing;

impl Level for Nothing {
    fn string(&self, _: &str) -> Option<String> {
        None
    }
    fn child(&self, _: &str) -> Option<&Self> {
        None
    }
}

impl Level for serde_json::Value {
    fn string(&self, name: &str) -> Option<String> {
        self.get(name)?.as_str().map(str::to_owned)
    }
    fn child(&self, name: &str) -> Option<&Self> {
        match self {
            serde_json::Value::Array(a) => a.get(name.parse::<usize>().ok()?),
            _ => self.get(name),
        }
    }
}

/// A type's shape, simplified for the shell: what a value is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form<'s> {
    Builtin(JsonType),
    Enum,
    /// A list of this element type.
    Array(Ty<'s>),
    /// An object; a union when it has a tag.
    Object,
    Alternate,
}

/// The types of one schema.
pub struct Types<'l, L> {
    lookup: &'l L,
}

impl<'l, 's, L: Lookup<'s>> Types<'l, L> {
    pub fn new(lookup: &'l L) -> Self {
        Types { lookup }
    }

    fn model(&self) -> SchemaModel<'l, L> {
        SchemaModel(self.lookup)
    }

    /// The argument type of `command` (`None`: no such command, or one
    /// that names no argument type).
    pub fn arguments(&self, command: &str) -> Option<Ty<'s>> {
        self.lookup.command(command)?.arg_type()
    }

    /// The form of `ty` (`None`: the schema lacks it).
    pub fn form(&self, ty: Ty<'s>) -> Option<Form<'s>> {
        Some(match self.model().shape(ty)? {
            Shape::Builtin(t) => Form::Builtin(t),
            Shape::Enum(_) => Form::Enum,
            Shape::Array(e) => Form::Array(e),
            Shape::Object { .. } => Form::Object,
            Shape::Alternate(_) => Form::Alternate,
            _ => return None,
        })
    }

    /// The values of enum `ty` (empty for other types).
    pub fn values(&self, ty: Ty<'s>) -> Vec<String> {
        match self.model().shape(ty) {
            Some(Shape::Enum(values)) => values.map(|v| v.to_string()).collect(),
            _ => Vec::new(),
        }
    }

    /// The branch types of alternate `ty` (empty for other types).
    pub fn branches(&self, ty: Ty<'s>) -> Vec<Ty<'s>> {
        match self.model().shape(ty) {
            Some(Shape::Alternate(b)) => b.collect(),
            _ => Vec::new(),
        }
    }

    /// The union tag of object `ty`.
    pub fn tag(&self, ty: Ty<'s>) -> Option<String> {
        match self.model().shape(ty)? {
            Shape::Object { tag, .. } => tag.map(|t| t.to_string()),
            _ => None,
        }
    }

    /// The object's own members (a union's base members).
    pub fn own_members(&self, ty: Ty<'s>) -> Vec<Member<'s>> {
        match self.model().shape(ty) {
            Some(Shape::Object { members, .. }) => members.collect(),
            _ => Vec::new(),
        }
    }

    /// The variants of union `ty`: tag value and variant type, in schema
    /// order.
    pub fn variants(&self, ty: Ty<'s>) -> Vec<(String, Ty<'s>)> {
        match self.lookup.resolve(ty).map(|e| e.kind()) {
            Some(Kind::Object(o)) => o
                .variants()
                .map(|v| (v.case().to_string(), v.type_name()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The variant type of union `ty` for tag value `case`.
    fn variant(&self, ty: Ty<'s>, case: &str) -> Option<Ty<'s>> {
        match self.lookup.resolve(ty)?.kind() {
            Kind::Object(o) => o.variant(case).map(|v| v.type_name()),
            _ => None,
        }
    }

    /// The members of object `ty` given what is at `level`: its own, then
    /// those of the variant the tag's value selects (and so on down, for a
    /// variant that is a union itself).
    pub fn members(&self, ty: Ty<'s>, level: &impl Level) -> Vec<Member<'s>> {
        let mut out = self.own_members(ty);
        let mut cur = ty;
        for _ in 0..MAX_CHECK_DEPTH {
            let Some(case) = self.tag(cur).and_then(|t| level.string(&t)) else {
                break;
            };
            let Some(next) = self.variant(cur, &case) else {
                break;
            };
            out.extend(self.own_members(next));
            cur = next;
        }
        out
    }

    /// The branch of alternate `ty` that is an object (with `list`: a
    /// list), if any.
    pub fn branch_of(&self, ty: Ty<'s>, list: bool) -> Option<Ty<'s>> {
        self.branches(ty).into_iter().find(|b| match self.form(*b) {
            Some(Form::Object) => !list,
            Some(Form::Array(_)) => list,
            _ => false,
        })
    }

    /// One step down from `ty` by member (or list index) `name`, where the
    /// user gave `level` at `ty`: an object's member, a list's element
    /// type, through an alternate's object or list branch.
    pub fn step(&self, ty: Ty<'s>, name: &str, level: &impl Level) -> Option<Ty<'s>> {
        let index = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
        let ty = match self.form(ty)? {
            Form::Alternate => self.branch_of(ty, index)?,
            _ => ty,
        };
        match self.form(ty)? {
            Form::Array(element) if index => Some(element),
            Form::Object => self
                .members(ty, level)
                .into_iter()
                .find(|m| m.name.to_string() == name)
                .map(|m| m.ty),
            _ => None,
        }
    }

    /// The type at member path `path` from `ty`, where the user gave
    /// `level` at `ty`.
    pub fn at<V: Level>(&self, ty: Ty<'s>, path: &[&str], level: Option<&V>) -> Option<Ty<'s>> {
        let mut cur = ty;
        let mut level = level;
        for name in path {
            cur = match level {
                Some(l) => self.step(cur, name, l),
                None => self.step(cur, name, &Nothing),
            }?;
            level = level.and_then(|l| l.child(name));
        }
        Some(cur)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use qmp_core::scan::{validate, FramerConfig};
    use qmp_core::schema::Schema;

    /// qemu-storage-daemon 10.0's `query-qmp-schema` reply (qmp-core's
    /// fixture).
    pub const QSD: &[u8] = include_bytes!("../../../../../qmp-core/tests/data/qsd-10.0-schema.s2c");

    /// Runs `f` with an index of the fixture.
    pub fn with_qsd<R>(f: impl FnOnce(&qmp_core::schema::Index<'_, '_>) -> R) -> R {
        let reply = validate(QSD, FramerConfig::new()).unwrap();
        let schema = Schema::from_reply(reply).unwrap();
        let mut storage = vec![0u32; schema.len()];
        let index = schema.index(&mut storage).unwrap();
        f(&index)
    }

    fn names(members: &[Member<'_>]) -> Vec<String> {
        members.iter().map(|m| m.name.to_string()).collect()
    }

    #[test]
    fn walks_blockdev_add() {
        with_qsd(|index| {
            let t = Types::new(index);
            let args = t.arguments("blockdev-add").unwrap();
            assert_eq!(t.form(args), Some(Form::Object));
            assert_eq!(t.tag(args).as_deref(), Some("driver"));
            let base = names(&t.members(args, &Nothing));
            assert_eq!(base[..3], ["driver", "node-name", "discard"]);
            let raw: serde_json::Value = serde_json::json!({"driver": "raw"});
            let with_raw = names(&t.members(args, &raw));
            assert!(with_raw.len() > base.len());
            assert!(with_raw.contains(&"file".to_owned()), "{with_raw:?}");
            // file: an alternate (BlockdevRef) whose object branch is the
            // arguments' own type.
            let file = t.step(args, "file", &raw).unwrap();
            assert_eq!(t.form(file), Some(Form::Alternate));
            assert_eq!(t.branch_of(file, false), Some(args));
            let driver = t.at(args, &["file", "driver"], Some(&raw)).unwrap();
            assert_eq!(t.form(driver), Some(Form::Enum));
            assert!(t.values(driver).contains(&"null-co".to_owned()));
            assert_eq!(t.at(args, &["nope"], Some(&raw)), None);
            assert_eq!(t.at::<Nothing>(args, &["file"], None), None);
        });
    }

    #[test]
    fn walks_lists() {
        with_qsd(|index| {
            let t = Types::new(index);
            let args = t.arguments("block-dirty-bitmap-merge").unwrap();
            let bitmaps = t.step(args, "bitmaps", &Nothing).unwrap();
            let Some(Form::Array(element)) = t.form(bitmaps) else {
                panic!("bitmaps is no list");
            };
            assert_eq!(
                t.at::<Nothing>(args, &["bitmaps", "0"], None),
                Some(element)
            );
            assert_eq!(t.form(element), Some(Form::Alternate));
            assert!(t
                .at::<Nothing>(args, &["bitmaps", "0", "node"], None)
                .is_some());
            assert_eq!(t.at::<Nothing>(args, &["bitmaps", "x"], None), None);
        });
    }
}
