//! One schema entry and its typed views, by meta-type: [`Entry`],
//! [`Command`], [`Event`], [`Object`], [`Enum`], [`Array`], [`Alternate`],
//! [`Builtin`].
//!
//! QEMU's format (`qapi/introspect.json`): every entry has `name`,
//! `meta-type` and optionally `features` (an array of strings); commands
//! add `arg-type`, `ret-type` and `allow-oob` (only when true); events
//! `arg-type`; objects `members` (`name`, `type`, `default` when optional,
//! `features`), and for unions `tag` and `variants` (`case`, `type`);
//! enums `members` (`name`, `features`) and, deprecated, `values`; arrays
//! `element-type`; alternates `members` (`type`); builtins `json-type`.
//! Type references are names, masked by QEMU as numbers (`"38"`; arrays
//! `"[38]"`; builtins keep theirs: `"str"`, `"[str]"`).

use crate::json::{Elements, JsonKind, JsonStr, RawJson};

/// The empty string, for accessors of entries that lack a member.
const EMPTY: JsonStr<'static> = JsonStr::from_validated(b"", b'"');

/// A string member of an object.
fn str_member<'s>(raw: &RawJson<'s>, key: &str) -> Option<JsonStr<'s>> {
    raw.get(key)?.as_json_str()
}

/// An array member of an object (empty when absent or not an array).
fn array_member<'s>(raw: &RawJson<'s>, key: &str) -> Elements<'s> {
    match raw.get(key) {
        Some(v) => v.elements(),
        None => RawJson::from_validated(b"[]").elements(),
    }
}

/// One `SchemaInfo`: a command, event or type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'s> {
    raw: RawJson<'s>,
}

/// The `meta-type` of an entry.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MetaType {
    /// `builtin`: `str`, `int`, `bool`, `number`, `null`, `any`.
    Builtin,
    /// `enum`.
    Enum,
    /// `array`.
    Array,
    /// `object` (a struct or a union).
    Object,
    /// `alternate`.
    Alternate,
    /// `command`.
    Command,
    /// `event`.
    Event,
    /// A meta-type this version does not know (a newer QEMU's).
    Unknown,
}

impl MetaType {
    /// The meta-type named `s`.
    pub fn from_name(s: JsonStr<'_>) -> MetaType {
        const ALL: [(&str, MetaType); 7] = [
            ("builtin", MetaType::Builtin),
            ("enum", MetaType::Enum),
            ("array", MetaType::Array),
            ("object", MetaType::Object),
            ("alternate", MetaType::Alternate),
            ("command", MetaType::Command),
            ("event", MetaType::Event),
        ];
        ALL.iter()
            .find(|(n, _)| s.eq_str(n))
            .map_or(MetaType::Unknown, |(_, m)| *m)
    }
}

/// An entry by meta-type ([`Entry::kind`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'s> {
    /// A command.
    Command(Command<'s>),
    /// An event.
    Event(Event<'s>),
    /// An object type (struct or union).
    Object(Object<'s>),
    /// An enum type.
    Enum(Enum<'s>),
    /// An array type.
    Array(Array<'s>),
    /// An alternate type.
    Alternate(Alternate<'s>),
    /// A builtin type.
    Builtin(Builtin<'s>),
    /// An entry of a meta-type this version does not know.
    Unknown(Entry<'s>),
}

impl<'s> Entry<'s> {
    pub(crate) const fn new(raw: RawJson<'s>) -> Self {
        Entry { raw }
    }

    /// The entry as received.
    pub const fn raw(&self) -> RawJson<'s> {
        self.raw
    }

    /// The name: a command or event name, a builtin's name, or a type's
    /// (masked) name. Empty if the entry has none.
    pub fn name(&self) -> JsonStr<'s> {
        str_member(&self.raw, "name").unwrap_or(EMPTY)
    }

    /// The meta-type.
    pub fn meta_type(&self) -> MetaType {
        str_member(&self.raw, "meta-type").map_or(MetaType::Unknown, MetaType::from_name)
    }

    /// The entry's features (`deprecated`, `unstable`, ...).
    pub fn features(&self) -> Features<'s> {
        Features {
            elements: array_member(&self.raw, "features"),
        }
    }

    /// Whether the entry has feature `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features().any(|f| f.eq_str(name))
    }

    /// The typed view.
    pub fn kind(&self) -> Kind<'s> {
        let e = *self;
        match self.meta_type() {
            MetaType::Command => Kind::Command(Command(e)),
            MetaType::Event => Kind::Event(Event(e)),
            MetaType::Object => Kind::Object(Object(e)),
            MetaType::Enum => Kind::Enum(Enum(e)),
            MetaType::Array => Kind::Array(Array(e)),
            MetaType::Alternate => Kind::Alternate(Alternate(e)),
            MetaType::Builtin => Kind::Builtin(Builtin(e)),
            MetaType::Unknown => Kind::Unknown(e),
        }
    }
}

/// Iterator over feature names.
#[derive(Clone, Debug)]
pub struct Features<'s> {
    elements: Elements<'s>,
}

impl<'s> Iterator for Features<'s> {
    type Item = JsonStr<'s>;

    fn next(&mut self) -> Option<JsonStr<'s>> {
        // A feature that is not a string (QEMU's 6.0 and older sent none)
        // is skipped.
        self.elements.by_ref().find_map(|e| e.as_json_str())
    }
}

macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'s>(Entry<'s>);

        impl<'s> $name<'s> {
            /// The entry.
            pub const fn entry(&self) -> Entry<'s> {
                self.0
            }

            /// The entry's name.
            pub fn name(&self) -> JsonStr<'s> {
                self.0.name()
            }

            /// The entry's features.
            pub fn features(&self) -> Features<'s> {
                self.0.features()
            }

            /// Whether the entry has feature `name`.
            pub fn has_feature(&self, name: &str) -> bool {
                self.0.has_feature(name)
            }
        }
    };
}

view!(
    /// A command: argument and return types, OOB, features.
    Command
);
view!(
    /// An event: its data type.
    Event
);
view!(
    /// An object type: members, and for a union its tag and variants.
    Object
);
view!(
    /// An enum type: its values and their features.
    Enum
);
view!(
    /// An array type: its element type.
    Array
);
view!(
    /// An alternate type: the types of its branches.
    Alternate
);
view!(
    /// A builtin type: its JSON type.
    Builtin
);

impl<'s> Command<'s> {
    /// The name of the argument object type (`arg-type`).
    pub fn arg_type(&self) -> Option<JsonStr<'s>> {
        str_member(&self.0.raw, "arg-type")
    }

    /// The name of the return type (`ret-type`).
    pub fn ret_type(&self) -> Option<JsonStr<'s>> {
        str_member(&self.0.raw, "ret-type")
    }

    /// Whether `exec-oob` may run it (`allow-oob`).
    pub fn allows_oob(&self) -> bool {
        self.0.raw.get("allow-oob").and_then(|v| v.as_bool()) == Some(true)
    }

    /// Whether it is `deprecated`.
    pub fn is_deprecated(&self) -> bool {
        self.has_feature("deprecated")
    }

    /// Whether it is `unstable`.
    pub fn is_unstable(&self) -> bool {
        self.has_feature("unstable")
    }
}

impl<'s> Event<'s> {
    /// The name of the data object type (`arg-type`).
    pub fn arg_type(&self) -> Option<JsonStr<'s>> {
        str_member(&self.0.raw, "arg-type")
    }
}

impl<'s> Object<'s> {
    /// The members (for a union: its base members), in schema order.
    pub fn members(&self) -> Members<'s> {
        Members {
            elements: array_member(&self.0.raw, "members"),
        }
    }

    /// The member `name`.
    pub fn member(&self, name: &str) -> Option<Member<'s>> {
        self.members().find(|m| m.name().eq_str(name))
    }

    /// A union's tag member name.
    pub fn tag(&self) -> Option<JsonStr<'s>> {
        str_member(&self.0.raw, "tag")
    }

    /// A union's variants, in schema order (empty for a struct).
    pub fn variants(&self) -> Variants<'s> {
        Variants {
            elements: array_member(&self.0.raw, "variants"),
        }
    }

    /// The variant for tag value `case`.
    pub fn variant(&self, case: &str) -> Option<Variant<'s>> {
        self.variants().find(|v| v.case().eq_str(case))
    }

    /// Whether the type is a union.
    pub fn is_union(&self) -> bool {
        self.tag().is_some()
    }
}

/// A member of an object type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'s> {
    raw: RawJson<'s>,
}

impl<'s> Member<'s> {
    /// The member as received.
    pub const fn raw(&self) -> RawJson<'s> {
        self.raw
    }

    /// The member name.
    pub fn name(&self) -> JsonStr<'s> {
        str_member(&self.raw, "name").unwrap_or(EMPTY)
    }

    /// The name of its type.
    pub fn type_name(&self) -> JsonStr<'s> {
        str_member(&self.raw, "type").unwrap_or(EMPTY)
    }

    /// Whether it is optional (QEMU marks that with `"default": null`).
    pub fn is_optional(&self) -> bool {
        self.raw.get("default").is_some()
    }

    /// The member's features.
    pub fn features(&self) -> Features<'s> {
        Features {
            elements: array_member(&self.raw, "features"),
        }
    }

    /// Whether the member has feature `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features().any(|f| f.eq_str(name))
    }
}

/// Iterator over the members of an object type.
#[derive(Clone, Debug)]
pub struct Members<'s> {
    elements: Elements<'s>,
}

impl<'s> Members<'s> {
    /// The members in `array` (a `members` value).
    pub(crate) fn of(array: RawJson<'s>) -> Self {
        Members {
            elements: array.elements(),
        }
    }
}

impl<'s> Iterator for Members<'s> {
    type Item = Member<'s>;

    fn next(&mut self) -> Option<Member<'s>> {
        self.elements
            .by_ref()
            .find(|e| e.kind() == JsonKind::Object)
            .map(|raw| Member { raw })
    }
}

/// A variant of a union: the tag value and the type of its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant<'s> {
    raw: RawJson<'s>,
}

impl<'s> Variant<'s> {
    /// The tag value (`case`).
    pub fn case(&self) -> JsonStr<'s> {
        str_member(&self.raw, "case").unwrap_or(EMPTY)
    }

    /// The name of the object type whose members the variant adds.
    pub fn type_name(&self) -> JsonStr<'s> {
        str_member(&self.raw, "type").unwrap_or(EMPTY)
    }
}

/// Iterator over the variants of a union.
#[derive(Clone, Debug)]
pub struct Variants<'s> {
    elements: Elements<'s>,
}

impl<'s> Iterator for Variants<'s> {
    type Item = Variant<'s>;

    fn next(&mut self) -> Option<Variant<'s>> {
        self.elements
            .by_ref()
            .find(|e| e.kind() == JsonKind::Object)
            .map(|raw| Variant { raw })
    }
}

impl<'s> Enum<'s> {
    /// The values with their features (`members`; QEMU before 6.2 sent
    /// only `values`, read then as values without features).
    pub fn members(&self) -> EnumMembers<'s> {
        EnumMembers::of(self.0.raw, self.0.raw.get("members"))
    }

    /// Whether `value` is one of the values.
    pub fn contains(&self, value: JsonStr<'_>) -> bool {
        self.members().any(|m| m.name().eq_json_str(&value))
    }

    /// The value `name`.
    pub fn value(&self, name: &str) -> Option<EnumMember<'s>> {
        self.members().find(|m| m.name().eq_str(name))
    }
}

/// One enum value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnumMember<'s> {
    name: JsonStr<'s>,
    raw: Option<RawJson<'s>>,
}

impl<'s> EnumMember<'s> {
    /// The value.
    pub const fn name(&self) -> JsonStr<'s> {
        self.name
    }

    /// The value's features (`deprecated`, `unstable`, ...).
    pub fn features(&self) -> Features<'s> {
        let elements = match &self.raw {
            Some(raw) => array_member(raw, "features"),
            None => RawJson::from_validated(b"[]").elements(),
        };
        Features { elements }
    }

    /// Whether the value has feature `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.features().any(|f| f.eq_str(name))
    }
}

/// Iterator over the values of an enum.
#[derive(Clone, Debug)]
pub struct EnumMembers<'s> {
    elements: Elements<'s>,
    plain: bool,
}

impl<'s> EnumMembers<'s> {
    /// The values of enum `raw`, whose `members` value is `members`.
    pub(crate) fn of(raw: RawJson<'s>, members: Option<RawJson<'s>>) -> Self {
        match members {
            Some(m) => EnumMembers {
                elements: m.elements(),
                plain: false,
            },
            None => EnumMembers {
                elements: array_member(&raw, "values"),
                plain: true,
            },
        }
    }
}

impl<'s> Iterator for EnumMembers<'s> {
    type Item = EnumMember<'s>;

    fn next(&mut self) -> Option<EnumMember<'s>> {
        let plain = self.plain;
        self.elements.by_ref().find_map(|e| {
            if plain {
                e.as_json_str().map(|name| EnumMember { name, raw: None })
            } else {
                str_member(&e, "name").map(|name| EnumMember { name, raw: Some(e) })
            }
        })
    }
}

impl<'s> Array<'s> {
    /// The name of the element type.
    pub fn element_type(&self) -> Option<JsonStr<'s>> {
        str_member(&self.0.raw, "element-type")
    }
}

impl<'s> Alternate<'s> {
    /// The names of the branch types, in schema order.
    pub fn members(&self) -> TypeNames<'s> {
        TypeNames {
            elements: array_member(&self.0.raw, "members"),
        }
    }
}

/// Iterator over the branch types of an alternate.
#[derive(Clone, Debug)]
pub struct TypeNames<'s> {
    elements: Elements<'s>,
}

impl<'s> TypeNames<'s> {
    /// The branch types in `array` (an alternate's `members` value).
    pub(crate) fn of(array: RawJson<'s>) -> Self {
        TypeNames {
            elements: array.elements(),
        }
    }
}

impl<'s> Iterator for TypeNames<'s> {
    type Item = JsonStr<'s>;

    fn next(&mut self) -> Option<JsonStr<'s>> {
        self.elements.by_ref().find_map(|e| str_member(&e, "type"))
    }
}

/// The JSON type of a builtin (`json-type`).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum JsonType {
    /// `string`.
    String,
    /// `number` (integer or not).
    Number,
    /// `int`: an integer (every QAPI integer type introspects as `int`).
    Int,
    /// `boolean`.
    Boolean,
    /// `null`.
    Null,
    /// `object`.
    Object,
    /// `array`.
    Array,
    /// `value`: anything (`any`).
    Value,
}

impl JsonType {
    /// The name QEMU uses (`json-type`).
    pub const fn as_str(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Int => "int",
            JsonType::Boolean => "boolean",
            JsonType::Null => "null",
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::Value => "value",
        }
    }

    /// The JSON type named `s`.
    pub fn from_name(s: JsonStr<'_>) -> Option<JsonType> {
        const ALL: [JsonType; 8] = [
            JsonType::String,
            JsonType::Number,
            JsonType::Int,
            JsonType::Boolean,
            JsonType::Null,
            JsonType::Object,
            JsonType::Array,
            JsonType::Value,
        ];
        ALL.into_iter().find(|t| s.eq_str(t.as_str()))
    }
}

impl<'s> Builtin<'s> {
    /// The JSON type (`None`: missing or one this version does not know).
    pub fn json_type(&self) -> Option<JsonType> {
        str_member(&self.0.raw, "json-type").and_then(JsonType::from_name)
    }
}
