//! The serde `Serializer` behind [`Ser`]: QEMU's escaping and number
//! format, members in field order.
//!
//! [`Ser`]: super::Ser

use core::fmt::{self, Write as _};
use serde::ser::{self, Serialize};

use super::escape::escape_pieces;
use super::number::{int128, write_display, write_f64};
use super::{EncodeError, JsonWriter, WriteJson};

/// Writes `value` through the serializer (its separator already written).
pub(super) fn write_serialize<T: Serialize + ?Sized>(
    w: &mut JsonWriter<'_>,
    value: &T,
) -> Result<(), EncodeError> {
    value.serialize(ValueSer { w })
}

/// Serializer of one value (its separator already written).
struct ValueSer<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
}

/// Serializer of a map key: writes the separator, the quoted key and the
/// colon; only strings (and unit variants, chars) are accepted.
struct KeySer<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
}

/// Sequence, map and struct state; `variant` closes an extra `}`.
struct Compound<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
    variant: bool,
}

impl Compound<'_, '_> {
    /// An array element: the separator, then the value.
    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.w.prefix();
        value.serialize(ValueSer { w: self.w })
    }

    /// A struct field: the separator, the quoted key and the colon, then
    /// the value.
    fn field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.w.key(key.as_bytes());
        value.serialize(ValueSer { w: self.w })
    }

    fn end_with(self, closer: u8) -> Result<(), EncodeError> {
        self.w.close(closer);
        if self.variant {
            self.w.close(b'}');
        }
        Ok(())
    }
}

/// Writes a `Display` value as an escaped string body.
struct EscapeFmt<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
}

impl fmt::Write for EscapeFmt<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_pieces(self.w, &[s.as_bytes()]);
        Ok(())
    }
}

/// Integers of up to 64 bits print as they are.
macro_rules! display_ints {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(fn $name(self, v: $ty) -> Result<(), EncodeError> {
            write_display(self.w, v)
        })*
    };
}

impl<'w, 'b> ValueSer<'w, 'b> {
    /// Opens an array or object (`opener`), inside `{"variant": ` when
    /// `variant` is given (closed again by [`Compound::end_with`]).
    fn compound(self, variant: Option<&str>, opener: u8) -> Compound<'w, 'b> {
        if let Some(variant) = variant {
            self.w.open(b'{');
            self.w.key(variant.as_bytes());
        }
        self.w.open(opener);
        Compound {
            w: self.w,
            variant: variant.is_some(),
        }
    }
}

impl<'w, 'b> ser::Serializer for ValueSer<'w, 'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'w, 'b>;
    type SerializeTuple = Compound<'w, 'b>;
    type SerializeTupleStruct = Compound<'w, 'b>;
    type SerializeTupleVariant = Compound<'w, 'b>;
    type SerializeMap = Compound<'w, 'b>;
    type SerializeStruct = Compound<'w, 'b>;
    type SerializeStructVariant = Compound<'w, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        v.write_json(self.w)
    }
    display_ints!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
    );
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        int128(self.w, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        match u64::try_from(v) {
            Ok(v) => write_display(self.w, v),
            Err(_) => Err(EncodeError::Unsupported),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        if !v.is_finite() {
            return Err(EncodeError::Unsupported);
        }
        write_f64(self.w, v)
    }
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.w.quoted(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.w.quoted(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.w.open(b'[');
        for b in v {
            self.w.prefix();
            write_display(self.w, *b)?;
        }
        self.w.close(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.w.put(b"null");
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.w.open(b'{');
        self.w.key(variant.as_bytes());
        value.serialize(ValueSer { w: self.w })?;
        self.w.close(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'w, 'b>, EncodeError> {
        Ok(self.compound(None, b'['))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'b>, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        Ok(self.compound(Some(variant), b'['))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'w, 'b>, EncodeError> {
        Ok(self.compound(None, b'{'))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        Ok(self.compound(Some(variant), b'{'))
    }
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<(), EncodeError> {
        self.w.put_byte(b'"');
        write!(EscapeFmt { w: self.w }, "{value}").map_err(|_| EncodeError::Unsupported)?;
        self.w.put_byte(b'"');
        Ok(())
    }
}

/// The serde compound traits that differ only in the name of their method
/// and in their closer: each forwards to [`Compound::element`] or
/// [`Compound::field`].
macro_rules! compound {
    ($($trait:ident::$method:ident($($arg:ident: $ty:ty),*) => $helper:ident, $closer:literal;)*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: ?Sized + Serialize>(&mut self, $($arg: $ty),*) -> Result<(), EncodeError> {
                self.$helper($($arg),*)
            }
            fn end(self) -> Result<(), EncodeError> {
                self.end_with($closer)
            }
        }
    )*};
}

compound! {
    SerializeSeq::serialize_element(value: &T) => element, b']';
    SerializeTuple::serialize_element(value: &T) => element, b']';
    SerializeTupleStruct::serialize_field(value: &T) => element, b']';
    SerializeTupleVariant::serialize_field(value: &T) => element, b']';
    SerializeStruct::serialize_field(key: &'static str, value: &T) => field, b'}';
    SerializeStructVariant::serialize_field(key: &'static str, value: &T) => field, b'}';
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(KeySer { w: self.w })
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(ValueSer { w: self.w })
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b'}')
    }
}

/// Every key type other than a string is rejected.
macro_rules! reject_keys {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(fn $name(self, _v: $ty) -> Result<(), EncodeError> {
            Err(EncodeError::KeyMustBeString)
        })*
    };
}

impl<'w, 'b> ser::Serializer for KeySer<'w, 'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<(), EncodeError>;
    type SerializeTuple = ser::Impossible<(), EncodeError>;
    type SerializeTupleStruct = ser::Impossible<(), EncodeError>;
    type SerializeTupleVariant = ser::Impossible<(), EncodeError>;
    type SerializeMap = ser::Impossible<(), EncodeError>;
    type SerializeStruct = ser::Impossible<(), EncodeError>;
    type SerializeStructVariant = ser::Impossible<(), EncodeError>;

    reject_keys!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.w.key(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.w.key(v.as_bytes());
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<(), EncodeError> {
        self.w.prefix();
        self.w.put_byte(b'"');
        write!(EscapeFmt { w: self.w }, "{value}").map_err(|_| EncodeError::Unsupported)?;
        self.w.put_byte(b'"');
        self.w.colon();
        Ok(())
    }
}
