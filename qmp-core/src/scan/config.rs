//! Framer settings: the dialect, the nesting limit, QEMU's other limits.

/// QEMU's nesting limit (`MAX_NESTING` in `json-streamer.c`), and the largest
/// limit a [`FramerConfig`] accepts.
pub const MAX_DEPTH: u16 = 1024;

/// QEMU's size limit (`MAX_TOKEN_SIZE` in `json-lexer.c` and
/// `json-streamer.c`): a single token longer than this is cut there, and a
/// message whose tokens (whitespace not counted) reach it is dropped with
/// `JSON token size limit exceeded`.
pub const MAX_TOKEN_SIZE: usize = 64 << 20;

/// QEMU's token limit (`MAX_TOKEN_COUNT` in `json-streamer.c`): the token
/// after this many in one message is `JSON token count limit exceeded`.
pub const MAX_TOKEN_COUNT: u32 = 2 << 20;

/// How many top-level members a message keeps spans for. Further members are
/// found by a re-scan of the (already validated) message.
pub const MAX_TRACKED_MEMBERS: usize = 8;

/// Machine words of one bit per nesting level.
pub(super) const DEPTH_WORDS: usize = MAX_DEPTH as usize / usize::BITS as usize;

/// Which JSON the scanner accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Dialect {
    /// QEMU's parser: RFC 8259 plus single-quoted strings and the `\'`
    /// escape; strings are *modified* UTF-8 (`C0 80` is U+0000) and Unicode
    /// noncharacters are rejected, as `util/unicode.c` does.
    Qemu,
    /// Plain RFC 8259: double quotes only, standard UTF-8, noncharacters
    /// allowed (what `serde_json` accepts).
    Strict,
}

/// Framer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FramerConfig {
    pub(super) max_depth: u16,
    pub(super) dialect: Dialect,
    pub(super) duplicate_keys: bool,
}

impl Default for FramerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl FramerConfig {
    /// QEMU's rules: nesting limit 1024, [`Dialect::Qemu`], duplicate keys
    /// rejected in every object (with the `duplicate-keys` feature, on by
    /// default; see [`FramerConfig::duplicate_keys`]); QEMU's token limits
    /// always apply.
    pub const fn new() -> Self {
        FramerConfig {
            max_depth: MAX_DEPTH,
            dialect: Dialect::Qemu,
            duplicate_keys: cfg!(feature = "duplicate-keys"),
        }
    }

    /// Sets the nesting limit; values above [`MAX_DEPTH`] are clamped to it.
    #[must_use]
    pub const fn with_max_depth(mut self, depth: u16) -> Self {
        self.max_depth = if depth > MAX_DEPTH { MAX_DEPTH } else { depth };
        self
    }

    /// Sets the dialect.
    #[must_use]
    pub const fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Whether a duplicate key in any object is an error (`JSON parse error,
    /// duplicate key`), as in QEMU's parser; on by default. It applies to the
    /// [`Dialect::Qemu`] dialect only (RFC 8259 allows duplicates) and not to
    /// [`validate`](super::validate), which keeps no bytes. A client may
    /// switch it off to read large replies faster.
    #[cfg(feature = "duplicate-keys")]
    #[must_use]
    pub const fn with_duplicate_keys(mut self, on: bool) -> Self {
        self.duplicate_keys = on;
        self
    }

    /// The same settings with duplicate keys not checked (the clients').
    pub(crate) const fn without_duplicate_keys(mut self) -> Self {
        self.duplicate_keys = false;
        self
    }

    /// Whether duplicate keys are checked.
    ///
    /// The check is compiled in with the `duplicate-keys` feature (on by
    /// default; about 3 KB of flash on a Cortex-M, and 400 instructions per
    /// small request). Without it, this is `false` and a message with a
    /// repeated key is taken, where QEMU answers `JSON parse error,
    /// duplicate key`: lookups (`Message::get`, `RawJson::get`, the
    /// argument checks) read the key's first occurrence, and
    /// `Message::request` reads the envelope's (`execute`, `arguments`,
    /// `id`) last one.
    pub const fn duplicate_keys(&self) -> bool {
        self.duplicate_keys
    }

    /// The nesting limit.
    pub const fn max_depth(&self) -> u16 {
        self.max_depth
    }

    /// The dialect.
    pub const fn dialect(&self) -> Dialect {
        self.dialect
    }
}
