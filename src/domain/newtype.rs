//! The boilerplate every string newtype shares: `as_str`, `Display`, `FromStr`, and serde as a plain string.
//!
//! Deserialising goes through the type's `parse`, so a value read back from JSON or the database is
//! checked exactly like one typed into a form ("parse, don't validate").

/// Implements the shared traits for a tuple newtype `$t(String)` that has
/// `fn parse(&str) -> Result<$t, FieldError>`.
macro_rules! string_newtype {
    ($t:ident) => {
        impl $t {
            /// The normalised value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = $crate::domain::error::FieldError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <String as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&raw).map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

pub(crate) use string_newtype;
