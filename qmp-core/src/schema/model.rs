//! The type model the checker works on: [`TypeModel`], implemented by the
//! views of a peer's schema (any [`Lookup`]) and by the agent's own
//! declarations ([`decl`](super::decl)).
//!
//! A type is a handle ([`TypeModel::Ty`]: a type name for a schema, a
//! [`TypeDecl`] for declarations) whose [`Shape`] says what JSON it takes.
//! Code that works on shapes (the argument checker, and later a code
//! generator's runtime checks or a shell's completion) is written once for
//! both.

use super::decl::{ObjectDecl, TypeDecl};
use super::entry::{self, JsonType, Kind, MetaType};
use super::{Lookup, Name};
use crate::json::{JsonStr, RawJson};

/// What JSON a type takes.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Shape<'s, T, M, B, V> {
    /// A builtin of this JSON type.
    Builtin(JsonType),
    /// A string out of these values.
    Enum(V),
    /// An array of this element type.
    Array(T),
    /// An object with these members (a union's base members) and, for a
    /// union, the name of the tag member.
    Object {
        /// The members in order.
        members: M,
        /// The tag member of a union.
        tag: Option<Name<'s>>,
    },
    /// One of these branch types.
    Alternate(B),
}

/// A member of an object shape.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct MemberShape<'s, T> {
    /// The member name.
    pub name: Name<'s>,
    /// Its type.
    pub ty: T,
    /// Whether it may be absent.
    pub optional: bool,
}

/// A model of types: see the module docs.
pub trait TypeModel<'s> {
    /// A handle on a type.
    type Ty: Copy;
    /// Iterator over an object's members (cloned to walk them again).
    type Members: Iterator<Item = MemberShape<'s, Self::Ty>> + Clone;
    /// Iterator over an alternate's branch types.
    type Branches: Iterator<Item = Self::Ty>;
    /// Iterator over an enum's values.
    type Values: Iterator<Item = Name<'s>>;

    /// The shape of `ty`; `None` when the type cannot be found (a schema
    /// naming a type it lacks).
    #[allow(clippy::type_complexity)]
    fn shape(
        &self,
        ty: Self::Ty,
    ) -> Option<Shape<'s, Self::Ty, Self::Members, Self::Branches, Self::Values>>;

    /// The object type of the union variant of `union` for tag value
    /// `case`, if it has one.
    fn variant(&self, union: Self::Ty, case: JsonStr<'_>) -> Option<Self::Ty>;

    /// A name for the type in error texts.
    fn label(&self, ty: Self::Ty) -> Name<'s>;
}

/// The views of a peer's schema as a [`TypeModel`]: types are their
/// names, resolved at every step.
#[derive(Debug)]
pub struct SchemaModel<'l, L>(pub &'l L);

/// [`SchemaModel`]'s member iterator.
#[derive(Clone, Debug)]
pub struct SchemaMembers<'s>(Option<entry::Members<'s>>);

impl<'s> Iterator for SchemaMembers<'s> {
    type Item = MemberShape<'s, JsonStr<'s>>;

    fn next(&mut self) -> Option<Self::Item> {
        let m = self.0.as_mut()?.next()?;
        Some(MemberShape {
            name: Name::Json(m.name()),
            ty: m.type_name(),
            optional: m.is_optional(),
        })
    }
}

/// [`SchemaModel`]'s enum value iterator.
#[derive(Clone, Debug)]
pub struct SchemaValues<'s>(entry::EnumMembers<'s>);

impl<'s> Iterator for SchemaValues<'s> {
    type Item = Name<'s>;

    fn next(&mut self) -> Option<Name<'s>> {
        self.0.next().map(|m| Name::Json(m.name()))
    }
}

impl<'s, L: Lookup<'s>> TypeModel<'s> for SchemaModel<'_, L> {
    type Ty = JsonStr<'s>;
    type Members = SchemaMembers<'s>;
    type Branches = entry::TypeNames<'s>;
    type Values = SchemaValues<'s>;

    fn shape(
        &self,
        ty: JsonStr<'s>,
    ) -> Option<Shape<'s, JsonStr<'s>, SchemaMembers<'s>, entry::TypeNames<'s>, SchemaValues<'s>>>
    {
        let entry = self.0.resolve(ty)?;
        // One pass over the entry for what the shape needs.
        let (mut meta, mut members, mut tag, mut json, mut element) =
            (None, None, None, None, None);
        for (k, v) in entry.raw().members() {
            match k.raw() {
                b"meta-type" => meta = v.as_json_str(),
                b"members" => members = Some(v),
                b"tag" => tag = v.as_json_str(),
                b"json-type" => json = v.as_json_str(),
                b"element-type" => element = v.as_json_str(),
                _ => {}
            }
        }
        let listed = members;
        let members = members.unwrap_or(RawJson::from_validated(b"[]"));
        Some(match meta.map(MetaType::from_name)? {
            // A builtin of an unknown JSON type takes anything.
            MetaType::Builtin => Shape::Builtin(
                json.and_then(JsonType::from_name)
                    .unwrap_or(JsonType::Value),
            ),
            MetaType::Enum => {
                Shape::Enum(SchemaValues(entry::EnumMembers::of(entry.raw(), listed)))
            }
            MetaType::Array => Shape::Array(element?),
            MetaType::Object => Shape::Object {
                members: SchemaMembers(Some(entry::Members::of(members))),
                tag: tag.map(Name::Json),
            },
            MetaType::Alternate => Shape::Alternate(entry::TypeNames::of(members)),
            // Commands, events and unknown meta-types are no argument
            // types: nothing fits.
            _ => return None,
        })
    }

    fn variant(&self, union: JsonStr<'s>, case: JsonStr<'_>) -> Option<JsonStr<'s>> {
        match self.0.resolve(union)?.kind() {
            Kind::Object(o) => o
                .variants()
                .find(|v| v.case().eq_json_str(&case))
                .map(|v| v.type_name()),
            _ => None,
        }
    }

    fn label(&self, ty: JsonStr<'s>) -> Name<'s> {
        Name::Json(ty)
    }
}

/// The agent's declarations as a [`TypeModel`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DeclModel;

/// [`DeclModel`]'s member iterator.
#[derive(Clone, Debug)]
pub struct DeclMembers<'s>(core::slice::Iter<'s, super::decl::MemberDecl<'s>>);

impl<'s> Iterator for DeclMembers<'s> {
    type Item = MemberShape<'s, TypeDecl<'s>>;

    fn next(&mut self) -> Option<Self::Item> {
        let m = self.0.next()?;
        Some(MemberShape {
            name: Name::Str(m.name()),
            ty: m.ty(),
            optional: m.is_optional(),
        })
    }
}

/// [`DeclModel`]'s branch iterator.
#[derive(Clone, Debug)]
pub struct DeclBranches<'s>(core::slice::Iter<'s, TypeDecl<'s>>);

impl<'s> Iterator for DeclBranches<'s> {
    type Item = TypeDecl<'s>;

    fn next(&mut self) -> Option<TypeDecl<'s>> {
        self.0.next().copied()
    }
}

/// [`DeclModel`]'s enum value iterator.
#[derive(Clone, Debug)]
pub struct DeclValues<'s>(core::slice::Iter<'s, super::decl::EnumValueDecl<'s>>);

impl<'s> Iterator for DeclValues<'s> {
    type Item = Name<'s>;

    fn next(&mut self) -> Option<Name<'s>> {
        self.0.next().map(|v| Name::Str(v.name()))
    }
}

impl<'s> TypeModel<'s> for DeclModel {
    type Ty = TypeDecl<'s>;
    type Members = DeclMembers<'s>;
    type Branches = DeclBranches<'s>;
    type Values = DeclValues<'s>;

    fn shape(
        &self,
        ty: TypeDecl<'s>,
    ) -> Option<Shape<'s, TypeDecl<'s>, DeclMembers<'s>, DeclBranches<'s>, DeclValues<'s>>> {
        Some(match ty {
            TypeDecl::Builtin(b) => Shape::Builtin(b.json_type()),
            TypeDecl::Enum(e) => Shape::Enum(DeclValues(e.values().iter())),
            TypeDecl::Array(t) => Shape::Array(*t),
            TypeDecl::Object(o) => Shape::Object {
                members: DeclMembers(o.members().iter()),
                tag: o.tag().map(Name::Str),
            },
            TypeDecl::Alternate(a) => Shape::Alternate(DeclBranches(a.branches().iter())),
        })
    }

    fn variant(&self, union: TypeDecl<'s>, case: JsonStr<'_>) -> Option<TypeDecl<'s>> {
        let TypeDecl::Object(o) = union else {
            return None;
        };
        o.variants()
            .iter()
            .find(|v| case.eq_str(v.case()))
            .map(|v| TypeDecl::Object(v.ty()))
    }

    fn label(&self, ty: TypeDecl<'s>) -> Name<'s> {
        Name::Str(match ty {
            TypeDecl::Alternate(a) => a.name(),
            TypeDecl::Object(o) => o.name(),
            TypeDecl::Enum(e) => e.name(),
            TypeDecl::Array(_) => "array",
            TypeDecl::Builtin(b) => b.name(),
        })
    }
}

/// The declared object type `o` as a [`DeclModel`] handle.
pub const fn object<'s>(o: &'s ObjectDecl<'s>) -> TypeDecl<'s> {
    TypeDecl::Object(o)
}
