//! `const` declarations of QAPI types, for the agent: [`TypeDecl`] and
//! the object, enum, alternate and event declarations it refers to.
//!
//! Everything is built by `const fn` from `&'static` slices, so a
//! firmware's whole command table, argument and return types included,
//! lives in flash:
//!
//! ```
//! use qmp_core::schema::decl::{EnumDecl, EnumValueDecl, MemberDecl, ObjectDecl, TypeDecl};
//!
//! static MODE: EnumDecl<'static> = EnumDecl::new(
//!     "LedMode",
//!     &[EnumValueDecl::new("on"), EnumValueDecl::new("off"), EnumValueDecl::new("blink")],
//! );
//! static SET_LED: ObjectDecl<'static> = ObjectDecl::new(
//!     "q_obj_set-led-arg",
//!     &[
//!         MemberDecl::new("index", TypeDecl::INT),
//!         MemberDecl::new("mode", TypeDecl::Enum(&MODE)),
//!         MemberDecl::optional("period-ms", TypeDecl::INT),
//!     ],
//! );
//! assert_eq!(SET_LED.members().len(), 3);
//! ```
//!
//! A type referred to from several places is one type when it is one
//! `static` (identity is the address): the agent's `query-qmp-schema` then
//! lists it once, under one number, as QEMU does. Declarations are not
//! checked for sense (a union's tag should be a required enum member of
//! its base, its variants' cases values of that enum).

use super::entry::JsonType;
use core::fmt;

/// A builtin type.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BuiltinDecl {
    /// `str`.
    Str,
    /// `int` (every QAPI integer type introspects as `int`).
    Int,
    /// `number`.
    Number,
    /// `bool`.
    Bool,
    /// `null`.
    Null,
    /// `any`.
    Any,
}

impl BuiltinDecl {
    /// QEMU's name of the builtin.
    pub const fn name(self) -> &'static str {
        match self {
            BuiltinDecl::Str => "str",
            BuiltinDecl::Int => "int",
            BuiltinDecl::Number => "number",
            BuiltinDecl::Bool => "bool",
            BuiltinDecl::Null => "null",
            BuiltinDecl::Any => "any",
        }
    }

    /// Its JSON type.
    pub const fn json_type(self) -> JsonType {
        match self {
            BuiltinDecl::Str => JsonType::String,
            BuiltinDecl::Int => JsonType::Int,
            BuiltinDecl::Number => JsonType::Number,
            BuiltinDecl::Bool => JsonType::Boolean,
            BuiltinDecl::Null => JsonType::Null,
            BuiltinDecl::Any => JsonType::Value,
        }
    }
}

/// A declared type. Equality is identity: the same builtin, or the same
/// declaration (address).
#[non_exhaustive]
#[derive(Clone, Copy)]
pub enum TypeDecl<'a> {
    /// A builtin.
    Builtin(BuiltinDecl),
    /// An enum.
    Enum(&'a EnumDecl<'a>),
    /// An array of the element type.
    Array(&'a TypeDecl<'a>),
    /// An object (struct or union).
    Object(&'a ObjectDecl<'a>),
    /// An alternate.
    Alternate(&'a AlternateDecl<'a>),
}

impl TypeDecl<'static> {
    /// `str`.
    pub const STR: TypeDecl<'static> = TypeDecl::Builtin(BuiltinDecl::Str);
    /// `int`.
    pub const INT: TypeDecl<'static> = TypeDecl::Builtin(BuiltinDecl::Int);
    /// `number`.
    pub const NUMBER: TypeDecl<'static> = TypeDecl::Builtin(BuiltinDecl::Number);
    /// `bool`.
    pub const BOOL: TypeDecl<'static> = TypeDecl::Builtin(BuiltinDecl::Bool);
    /// `null`.
    pub const NULL: TypeDecl<'static> = TypeDecl::Builtin(BuiltinDecl::Null);
    /// `any`.
    pub const ANY: TypeDecl<'static> = TypeDecl::Builtin(BuiltinDecl::Any);
}

impl<'a> TypeDecl<'a> {
    /// The declared name (a builtin's QEMU name; `"array"` for arrays).
    pub const fn name(&self) -> &'a str {
        match self {
            TypeDecl::Builtin(b) => b.name(),
            TypeDecl::Enum(e) => e.name,
            TypeDecl::Array(_) => "array",
            TypeDecl::Object(o) => o.name,
            TypeDecl::Alternate(a) => a.name,
        }
    }

    /// The address that identifies a declaration (0 for builtins, which
    /// are told apart by [`TypeDecl::discriminant`]).
    pub(crate) fn address(&self) -> usize {
        match self {
            TypeDecl::Builtin(_) => 0,
            TypeDecl::Enum(e) => core::ptr::from_ref(*e) as usize,
            TypeDecl::Array(t) => core::ptr::from_ref(*t) as usize,
            TypeDecl::Object(o) => core::ptr::from_ref(*o) as usize,
            TypeDecl::Alternate(a) => core::ptr::from_ref(*a) as usize,
        }
    }

    /// Which variant (and which builtin).
    pub(crate) fn discriminant(&self) -> u8 {
        match self {
            TypeDecl::Builtin(b) => *b as u8,
            TypeDecl::Enum(_) => 16,
            TypeDecl::Array(_) => 17,
            TypeDecl::Object(_) => 18,
            TypeDecl::Alternate(_) => 19,
        }
    }
}

impl PartialEq for TypeDecl<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant() && self.address() == other.address()
    }
}

impl Eq for TypeDecl<'_> {}

/// The name only: declarations may refer to themselves.
impl fmt::Debug for TypeDecl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeDecl::Array(t) => write!(f, "[{}]", t.name()),
            t => f.write_str(t.name()),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for TypeDecl<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.name())
    }
}

/// Features of a declaration (`deprecated`, `unstable`, ...).
pub type FeatureList<'a> = &'a [&'a str];

/// An enum value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct EnumValueDecl<'a> {
    name: &'a str,
    features: FeatureList<'a>,
}

impl<'a> EnumValueDecl<'a> {
    /// The value `name`.
    pub const fn new(name: &'a str) -> Self {
        EnumValueDecl {
            name,
            features: &[],
        }
    }

    /// With features.
    #[must_use]
    pub const fn with_features(mut self, features: FeatureList<'a>) -> Self {
        self.features = features;
        self
    }

    /// The value.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// Its features.
    pub const fn features(&self) -> FeatureList<'a> {
        self.features
    }
}

/// An enum type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct EnumDecl<'a> {
    name: &'a str,
    values: &'a [EnumValueDecl<'a>],
    features: FeatureList<'a>,
}

impl<'a> EnumDecl<'a> {
    /// The enum `name` (a label, masked in introspection) with `values`.
    pub const fn new(name: &'a str, values: &'a [EnumValueDecl<'a>]) -> Self {
        EnumDecl {
            name,
            values,
            features: &[],
        }
    }

    /// With features.
    #[must_use]
    pub const fn with_features(mut self, features: FeatureList<'a>) -> Self {
        self.features = features;
        self
    }

    /// The label.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The values.
    pub const fn values(&self) -> &'a [EnumValueDecl<'a>] {
        self.values
    }

    /// Its features.
    pub const fn features(&self) -> FeatureList<'a> {
        self.features
    }
}

/// A member of an object type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct MemberDecl<'a> {
    name: &'a str,
    ty: TypeDecl<'a>,
    optional: bool,
    features: FeatureList<'a>,
}

impl<'a> MemberDecl<'a> {
    /// A required member.
    pub const fn new(name: &'a str, ty: TypeDecl<'a>) -> Self {
        MemberDecl {
            name,
            ty,
            optional: false,
            features: &[],
        }
    }

    /// An optional member (QAPI's `'*name'`).
    pub const fn optional(name: &'a str, ty: TypeDecl<'a>) -> Self {
        MemberDecl {
            name,
            ty,
            optional: true,
            features: &[],
        }
    }

    /// With features.
    #[must_use]
    pub const fn with_features(mut self, features: FeatureList<'a>) -> Self {
        self.features = features;
        self
    }

    /// The name.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The type.
    pub const fn ty(&self) -> TypeDecl<'a> {
        self.ty
    }

    /// Whether it may be absent.
    pub const fn is_optional(&self) -> bool {
        self.optional
    }

    /// Its features.
    pub const fn features(&self) -> FeatureList<'a> {
        self.features
    }
}

/// A union variant: the tag value and the object type whose members it
/// adds. Equality is the case and the identity of the type.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct VariantDecl<'a> {
    case: &'a str,
    ty: &'a ObjectDecl<'a>,
}

impl<'a> VariantDecl<'a> {
    /// The variant for tag value `case`.
    pub const fn new(case: &'a str, ty: &'a ObjectDecl<'a>) -> Self {
        VariantDecl { case, ty }
    }

    /// The tag value.
    pub const fn case(&self) -> &'a str {
        self.case
    }

    /// The type of its members.
    pub const fn ty(&self) -> &'a ObjectDecl<'a> {
        self.ty
    }
}

impl PartialEq for VariantDecl<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.case == other.case && core::ptr::eq(self.ty, other.ty)
    }
}

impl Eq for VariantDecl<'_> {}

impl fmt::Debug for VariantDecl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.case, self.ty.name)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for VariantDecl<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}: {=str}", self.case, self.ty.name)
    }
}

/// An object type: a struct, or a union (base members, a tag member and
/// variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ObjectDecl<'a> {
    name: &'a str,
    members: &'a [MemberDecl<'a>],
    tag: Option<&'a str>,
    variants: &'a [VariantDecl<'a>],
    features: FeatureList<'a>,
}

impl<'a> ObjectDecl<'a> {
    /// A struct `name` (a label, masked in introspection).
    pub const fn new(name: &'a str, members: &'a [MemberDecl<'a>]) -> Self {
        ObjectDecl {
            name,
            members,
            tag: None,
            variants: &[],
            features: &[],
        }
    }

    /// The object with no members (QEMU's `q_empty`: the arguments of a
    /// command that takes none, the return of one that returns nothing).
    pub const EMPTY: ObjectDecl<'static> = ObjectDecl::new("q_empty", &[]);

    /// A union: base `members`, the `tag` member among them, `variants`.
    pub const fn union(
        name: &'a str,
        members: &'a [MemberDecl<'a>],
        tag: &'a str,
        variants: &'a [VariantDecl<'a>],
    ) -> Self {
        ObjectDecl {
            name,
            members,
            tag: Some(tag),
            variants,
            features: &[],
        }
    }

    /// With features.
    #[must_use]
    pub const fn with_features(mut self, features: FeatureList<'a>) -> Self {
        self.features = features;
        self
    }

    /// The label.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The (base) members.
    pub const fn members(&self) -> &'a [MemberDecl<'a>] {
        self.members
    }

    /// A union's tag member.
    pub const fn tag(&self) -> Option<&'a str> {
        self.tag
    }

    /// A union's variants.
    pub const fn variants(&self) -> &'a [VariantDecl<'a>] {
        self.variants
    }

    /// Its features.
    pub const fn features(&self) -> FeatureList<'a> {
        self.features
    }
}

/// An alternate type: one of several branch types, told apart by JSON
/// type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct AlternateDecl<'a> {
    name: &'a str,
    branches: &'a [TypeDecl<'a>],
    features: FeatureList<'a>,
}

impl<'a> AlternateDecl<'a> {
    /// The alternate `name` (QEMU names it in its type errors: `expected:
    /// NAME`) of `branches`.
    pub const fn new(name: &'a str, branches: &'a [TypeDecl<'a>]) -> Self {
        AlternateDecl {
            name,
            branches,
            features: &[],
        }
    }

    /// With features.
    #[must_use]
    pub const fn with_features(mut self, features: FeatureList<'a>) -> Self {
        self.features = features;
        self
    }

    /// The label.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The branch types.
    pub const fn branches(&self) -> &'a [TypeDecl<'a>] {
        self.branches
    }

    /// Its features.
    pub const fn features(&self) -> FeatureList<'a> {
        self.features
    }
}

/// An event the agent emits, for its `query-qmp-schema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct EventDecl<'a> {
    name: &'a str,
    data: Option<&'a ObjectDecl<'a>>,
    features: FeatureList<'a>,
}

impl<'a> EventDecl<'a> {
    /// The event `name`, without data.
    pub const fn new(name: &'a str) -> Self {
        EventDecl {
            name,
            data: None,
            features: &[],
        }
    }

    /// With a data type.
    #[must_use]
    pub const fn with_data(mut self, data: &'a ObjectDecl<'a>) -> Self {
        self.data = Some(data);
        self
    }

    /// With features.
    #[must_use]
    pub const fn with_features(mut self, features: FeatureList<'a>) -> Self {
        self.features = features;
        self
    }

    /// The name.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// The data type.
    pub const fn data(&self) -> Option<&'a ObjectDecl<'a>> {
        self.data
    }

    /// Its features.
    pub const fn features(&self) -> FeatureList<'a> {
        self.features
    }
}
