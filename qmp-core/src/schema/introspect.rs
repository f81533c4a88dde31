//! The agent's own `query-qmp-schema`, written from its command table as
//! QEMU's `qapi/introspect.py` generates it: [`SchemaList`].
//!
//! QEMU's rules, followed here: commands, then events, in table order;
//! then every type they use, in order of first use (a type's own
//! references are used when it is written); type names masked as numbers
//! in that order (builtins keep their names, arrays are `[ELEMENT]`);
//! commands without declared arguments or return type use the empty object
//! (`q_empty`); every integer is `int`; members of each object in QEMU's
//! QDict order (`name`, `tag`, `variants`, `members`, ... : see
//! [`ENTRY_KEYS`]), so the reply is byte-identical to QEMU's for the same
//! schema.
//!
//! No allocation: the used types are kept in a table of
//! [`MAX_TYPES`] on the stack while the reply is written (8 bytes each on
//! 32-bit targets); a table with more types fails with
//! [`EncodeError::Unsupported`], which the agent answers with an error.

use super::decl::{
    EnumDecl, EnumValueDecl, EventDecl, MemberDecl, ObjectDecl, TypeDecl, VariantDecl,
};
use crate::agent::CommandSpec;
use crate::encode::{EncodeError, JsonWriter, WriteJson};
use crate::json::RawJson;

/// How many distinct types (builtins and arrays included) the agent's
/// `query-qmp-schema` can describe.
pub const MAX_TYPES: usize = 128;

/// The keys of the entries, in the order QEMU writes them (ascending
/// `qdict_bucket`; no two share a bucket): checked by a unit test.
#[cfg(test)]
pub(crate) const ENTRY_KEYS: [&str; 15] = [
    "name",
    "element-type",
    "tag",
    "variants",
    "ret-type",
    "default",
    "members",
    "allow-oob",
    "case",
    "type",
    "json-type",
    "meta-type",
    "arg-type",
    "values",
    "features",
];

const fn e(name: &'static str) -> EnumValueDecl<'static> {
    EnumValueDecl::new(name)
}

static STR_LIST: TypeDecl<'static> = TypeDecl::Array(&TypeDecl::STR);

static META_TYPE: EnumDecl<'static> = EnumDecl::new(
    "SchemaMetaType",
    &[
        e("builtin"),
        e("enum"),
        e("array"),
        e("object"),
        e("alternate"),
        e("command"),
        e("event"),
    ],
);
static JSON_TYPE: EnumDecl<'static> = EnumDecl::new(
    "JSONType",
    &[
        e("string"),
        e("number"),
        e("int"),
        e("boolean"),
        e("null"),
        e("object"),
        e("array"),
        e("value"),
    ],
);
static INFO_BUILTIN: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoBuiltin",
    &[MemberDecl::new("json-type", TypeDecl::Enum(&JSON_TYPE))],
);
static ENUM_MEMBER: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoEnumMember",
    &[
        MemberDecl::new("name", TypeDecl::STR),
        MemberDecl::optional("features", STR_LIST),
    ],
);
static INFO_ENUM: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoEnum",
    &[
        MemberDecl::new("members", TypeDecl::Array(&TypeDecl::Object(&ENUM_MEMBER))),
        MemberDecl::new("values", STR_LIST).with_features(&["deprecated"]),
    ],
);
static INFO_ARRAY: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoArray",
    &[MemberDecl::new("element-type", TypeDecl::STR)],
);
static OBJECT_MEMBER: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoObjectMember",
    &[
        MemberDecl::new("name", TypeDecl::STR),
        MemberDecl::new("type", TypeDecl::STR),
        MemberDecl::optional("default", TypeDecl::ANY),
        MemberDecl::optional("features", STR_LIST),
    ],
);
static OBJECT_VARIANT: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoObjectVariant",
    &[
        MemberDecl::new("case", TypeDecl::STR),
        MemberDecl::new("type", TypeDecl::STR),
    ],
);
static INFO_OBJECT: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoObject",
    &[
        MemberDecl::new(
            "members",
            TypeDecl::Array(&TypeDecl::Object(&OBJECT_MEMBER)),
        ),
        MemberDecl::optional("tag", TypeDecl::STR),
        MemberDecl::optional(
            "variants",
            TypeDecl::Array(&TypeDecl::Object(&OBJECT_VARIANT)),
        ),
    ],
);
static ALTERNATE_MEMBER: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoAlternateMember",
    &[MemberDecl::new("type", TypeDecl::STR)],
);
static INFO_ALTERNATE: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoAlternate",
    &[MemberDecl::new(
        "members",
        TypeDecl::Array(&TypeDecl::Object(&ALTERNATE_MEMBER)),
    )],
);
static INFO_COMMAND: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoCommand",
    &[
        MemberDecl::new("arg-type", TypeDecl::STR),
        MemberDecl::new("ret-type", TypeDecl::STR),
        MemberDecl::optional("allow-oob", TypeDecl::BOOL),
    ],
);
static INFO_EVENT: ObjectDecl<'static> = ObjectDecl::new(
    "SchemaInfoEvent",
    &[MemberDecl::new("arg-type", TypeDecl::STR)],
);
static SCHEMA_INFO: ObjectDecl<'static> = ObjectDecl::union(
    "SchemaInfo",
    &[
        MemberDecl::new("name", TypeDecl::STR),
        MemberDecl::new("meta-type", TypeDecl::Enum(&META_TYPE)),
        MemberDecl::optional("features", STR_LIST),
    ],
    "meta-type",
    &[
        VariantDecl::new("builtin", &INFO_BUILTIN),
        VariantDecl::new("enum", &INFO_ENUM),
        VariantDecl::new("array", &INFO_ARRAY),
        VariantDecl::new("object", &INFO_OBJECT),
        VariantDecl::new("alternate", &INFO_ALTERNATE),
        VariantDecl::new("command", &INFO_COMMAND),
        VariantDecl::new("event", &INFO_EVENT),
    ],
);
/// `query-qmp-schema`'s return type: `['SchemaInfo']`.
static SCHEMA_INFO_LIST: TypeDecl<'static> = TypeDecl::Array(&TypeDecl::Object(&SCHEMA_INFO));

static COMMAND_INFO: ObjectDecl<'static> =
    ObjectDecl::new("CommandInfo", &[MemberDecl::new("name", TypeDecl::STR)]);
/// `query-commands`' return type: `['CommandInfo']`.
static COMMAND_INFO_LIST: TypeDecl<'static> = TypeDecl::Array(&TypeDecl::Object(&COMMAND_INFO));

static QMP_CAPABILITY: EnumDecl<'static> = EnumDecl::new("QMPCapability", &[e("oob")]);
/// `qmp_capabilities`' arguments.
pub(crate) static QMP_CAPABILITIES_ARGS: ObjectDecl<'static> = ObjectDecl::new(
    "q_obj_qmp_capabilities-arg",
    &[MemberDecl::optional(
        "enable",
        TypeDecl::Array(&TypeDecl::Enum(&QMP_CAPABILITY)),
    )],
);

static EMPTY: ObjectDecl<'static> = ObjectDecl::EMPTY;
const EMPTY_TYPE: TypeDecl<'static> = TypeDecl::Object(&EMPTY);

/// Whether two declared types are the same type: the same declaration, or
/// arrays of the same type (QEMU has one array type per element type).
fn same(a: &TypeDecl<'_>, b: &TypeDecl<'_>, depth: usize) -> bool {
    match (a, b) {
        (TypeDecl::Array(x), TypeDecl::Array(y)) => {
            core::ptr::eq(*x, *y) || (depth < 8 && same(x, y, depth + 1))
        }
        _ => a == b,
    }
}

/// The arguments and return type a command introspects with.
fn command_types<'a>(c: &CommandSpec<'a>) -> (TypeDecl<'a>, TypeDecl<'a>) {
    let ret = match c.name() {
        "query-qmp-schema" => SCHEMA_INFO_LIST,
        "query-commands" => COMMAND_INFO_LIST,
        _ => c.returns().unwrap_or(EMPTY_TYPE),
    };
    let args = c.arguments().map_or(EMPTY_TYPE, TypeDecl::Object);
    (args, ret)
}

/// One command or event of the list.
#[derive(Clone, Copy)]
enum Entity<'a> {
    Command {
        name: &'a str,
        args: TypeDecl<'a>,
        ret: TypeDecl<'a>,
        oob: bool,
        features: &'a [&'a str],
    },
    Event(&'a EventDecl<'a>),
}

/// `query-qmp-schema` for a command table (and events): see the module
/// docs.
pub(crate) struct SchemaList<'a> {
    pub(crate) commands: &'a [CommandSpec<'a>],
    pub(crate) events: &'a [EventDecl<'a>],
    /// QMP (`qmp_capabilities` is listed first).
    pub(crate) qmp: bool,
}

type Used<'a> = heapless::Vec<TypeDecl<'a>, MAX_TYPES>;

impl<'a> SchemaList<'a> {
    fn entities(&self) -> impl Iterator<Item = Entity<'a>> + 'a {
        let caps = self.qmp.then_some(Entity::Command {
            name: "qmp_capabilities",
            args: TypeDecl::Object(&QMP_CAPABILITIES_ARGS),
            ret: EMPTY_TYPE,
            oob: false,
            features: &[],
        });
        let commands = self.commands.iter().map(|c| {
            let (args, ret) = command_types(c);
            Entity::Command {
                name: c.name(),
                args,
                ret,
                oob: c.allows_oob(),
                features: c.features(),
            }
        });
        caps.into_iter()
            .chain(commands)
            .chain(self.events.iter().map(Entity::Event))
    }

    /// The types in order of first use.
    fn used(&self) -> Result<Used<'a>, EncodeError> {
        let mut used = Used::new();
        for entity in self.entities() {
            match entity {
                Entity::Command { args, ret, .. } => {
                    use_type(&mut used, args, 0)?;
                    use_type(&mut used, ret, 0)?;
                }
                Entity::Event(ev) => {
                    use_type(&mut used, ev.data().map_or(EMPTY_TYPE, TypeDecl::Object), 0)?
                }
            }
        }
        let mut k = 0;
        while let Some(t) = used.get(k).copied() {
            match t {
                TypeDecl::Object(o) => {
                    for m in o.members() {
                        use_type(&mut used, m.ty(), 0)?;
                    }
                    for v in o.variants() {
                        use_type(&mut used, TypeDecl::Object(v.ty()), 0)?;
                    }
                }
                TypeDecl::Alternate(a) => {
                    for b in a.branches() {
                        use_type(&mut used, *b, 0)?;
                    }
                }
                TypeDecl::Array(el) => use_type(&mut used, *el, 0)?,
                TypeDecl::Builtin(_) | TypeDecl::Enum(_) => {}
            }
            k += 1;
        }
        Ok(used)
    }
}

/// QEMU's `_use_type`: the type joins the list at its first use, and an
/// array's element type right after the array.
fn use_type<'a>(used: &mut Used<'a>, t: TypeDecl<'a>, depth: usize) -> Result<(), EncodeError> {
    if depth > 8 {
        return Err(EncodeError::Unsupported);
    }
    if !used.iter().any(|u| same(u, &t, 0)) {
        used.push(t).map_err(|_| EncodeError::Unsupported)?;
    }
    if let TypeDecl::Array(el) = t {
        use_type(used, *el, depth + 1)?;
    }
    Ok(())
}

/// Whether the type's name is masked as a number.
fn is_named(t: &TypeDecl<'_>) -> bool {
    matches!(
        t,
        TypeDecl::Object(_) | TypeDecl::Enum(_) | TypeDecl::Alternate(_)
    )
}

/// A type's name as introspection shows it, built in a small buffer.
struct TypeName {
    buf: [u8; 48],
    len: usize,
}

impl TypeName {
    fn of(used: &Used<'_>, t: &TypeDecl<'_>) -> Result<TypeName, EncodeError> {
        let mut name = TypeName {
            buf: [0; 48],
            len: 0,
        };
        name.push_type(used, t, 0)?;
        Ok(name)
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.len + bytes.len();
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(EncodeError::Unsupported)?;
        dst.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
        self.len = end;
        Ok(())
    }

    fn push_type(
        &mut self,
        used: &Used<'_>,
        t: &TypeDecl<'_>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        match t {
            TypeDecl::Builtin(b) => self.push(b.name().as_bytes()),
            TypeDecl::Array(el) if depth < 8 => {
                self.push(b"[")?;
                self.push_type(used, el, depth + 1)?;
                self.push(b"]")
            }
            TypeDecl::Array(_) => Err(EncodeError::Unsupported),
            _ => {
                let n = used
                    .iter()
                    .take_while(|u| !same(u, t, 0))
                    .filter(|u| is_named(u))
                    .count();
                let mut digits = [0u8; 20];
                let mut i = digits.len();
                let mut v = n;
                loop {
                    i -= 1;
                    if let Some(d) = digits.get_mut(i) {
                        *d = b'0' + (v % 10) as u8;
                    }
                    v /= 10;
                    if v == 0 || i == 0 {
                        break;
                    }
                }
                self.push(digits.get(i..).unwrap_or_default())
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

fn key_str(w: &mut JsonWriter<'_>, key: &str, value: &[u8]) {
    w.key(key.as_bytes());
    w.quoted(value);
}

fn key_type(
    w: &mut JsonWriter<'_>,
    used: &Used<'_>,
    key: &str,
    t: &TypeDecl<'_>,
) -> Result<(), EncodeError> {
    let name = TypeName::of(used, t)?;
    key_str(w, key, name.as_bytes());
    Ok(())
}

fn features(w: &mut JsonWriter<'_>, features: &[&str]) {
    if features.is_empty() {
        return;
    }
    w.key(b"features");
    w.open(b'[');
    for f in features {
        w.prefix();
        w.quoted(f.as_bytes());
    }
    w.close(b']');
}

fn write_entity(
    w: &mut JsonWriter<'_>,
    used: &Used<'_>,
    e: &Entity<'_>,
) -> Result<(), EncodeError> {
    w.open(b'{');
    match e {
        Entity::Command {
            name,
            args,
            ret,
            oob,
            features: f,
        } => {
            key_str(w, "name", name.as_bytes());
            key_type(w, used, "ret-type", ret)?;
            if *oob {
                w.key(b"allow-oob");
                true.write_json(w)?;
            }
            key_str(w, "meta-type", b"command");
            key_type(w, used, "arg-type", args)?;
            features(w, f);
        }
        Entity::Event(ev) => {
            key_str(w, "name", ev.name().as_bytes());
            key_str(w, "meta-type", b"event");
            let data = ev.data().map_or(EMPTY_TYPE, TypeDecl::Object);
            key_type(w, used, "arg-type", &data)?;
            features(w, ev.features());
        }
    }
    w.close(b'}');
    Ok(())
}

fn write_members(
    w: &mut JsonWriter<'_>,
    used: &Used<'_>,
    members: &[MemberDecl<'_>],
) -> Result<(), EncodeError> {
    w.key(b"members");
    w.open(b'[');
    for m in members {
        w.prefix();
        w.open(b'{');
        key_str(w, "name", m.name().as_bytes());
        if m.is_optional() {
            w.key(b"default");
            RawJson::from_validated(b"null").write_json(w)?;
        }
        key_type(w, used, "type", &m.ty())?;
        features(w, m.features());
        w.close(b'}');
    }
    w.close(b']');
    Ok(())
}

fn write_type(
    w: &mut JsonWriter<'_>,
    used: &Used<'_>,
    t: &TypeDecl<'_>,
) -> Result<(), EncodeError> {
    w.open(b'{');
    match t {
        TypeDecl::Builtin(b) => {
            key_str(w, "name", b.name().as_bytes());
            key_str(w, "json-type", b.json_type().as_str().as_bytes());
            key_str(w, "meta-type", b"builtin");
        }
        TypeDecl::Array(el) => {
            key_type(w, used, "name", t)?;
            key_type(w, used, "element-type", el)?;
            key_str(w, "meta-type", b"array");
        }
        TypeDecl::Object(o) => {
            key_type(w, used, "name", t)?;
            if let Some(tag) = o.tag() {
                key_str(w, "tag", tag.as_bytes());
                w.key(b"variants");
                w.open(b'[');
                for v in o.variants() {
                    w.prefix();
                    w.open(b'{');
                    key_str(w, "case", v.case().as_bytes());
                    key_type(w, used, "type", &TypeDecl::Object(v.ty()))?;
                    w.close(b'}');
                }
                w.close(b']');
            }
            write_members(w, used, o.members())?;
            key_str(w, "meta-type", b"object");
            features(w, o.features());
        }
        TypeDecl::Enum(en) => {
            key_type(w, used, "name", t)?;
            w.key(b"members");
            w.open(b'[');
            for v in en.values() {
                w.prefix();
                w.open(b'{');
                key_str(w, "name", v.name().as_bytes());
                features(w, v.features());
                w.close(b'}');
            }
            w.close(b']');
            key_str(w, "meta-type", b"enum");
            w.key(b"values");
            w.open(b'[');
            for v in en.values() {
                w.prefix();
                w.quoted(v.name().as_bytes());
            }
            w.close(b']');
            features(w, en.features());
        }
        TypeDecl::Alternate(a) => {
            key_type(w, used, "name", t)?;
            w.key(b"members");
            w.open(b'[');
            for b in a.branches() {
                w.prefix();
                w.open(b'{');
                key_type(w, used, "type", b)?;
                w.close(b'}');
            }
            w.close(b']');
            key_str(w, "meta-type", b"alternate");
            features(w, a.features());
        }
    }
    w.close(b'}');
    Ok(())
}

impl WriteJson for SchemaList<'_> {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        let used = self.used()?;
        w.open(b'[');
        for e in self.entities() {
            w.prefix();
            write_entity(w, &used, &e)?;
        }
        for t in &used {
            w.prefix();
            write_type(w, &used, t)?;
        }
        w.close(b']');
        Ok(())
    }
}
