//! Output style: [`Style`], its spacing ([`Layout`]) and its line ending
//! ([`LineEnding`]).

/// Spacing between tokens.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Layout {
    /// QEMU's compact output: `": "` and `", "`, no other spaces.
    Compact,
    /// No spaces at all, like python `qemu.qmp` (`{"execute":"x"}`).
    Minimal,
    /// QEMU's pretty output (`pretty=on`): a newline and 4 spaces per depth
    /// after `{`, `[` and `,`, and before every closer.
    Pretty,
}

/// What ends each line (and each message).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LineEnding {
    /// Nothing after the message (python `qemu.qmp` commands). Pretty
    /// output then uses `\n` inside the message.
    None,
    /// `\n` (the guest agent).
    Lf,
    /// `\r\n` (QMP: every `\n`, inside pretty messages too).
    CrLf,
}

/// Output style of every writer in this module: a [`Layout`] and a
/// [`LineEnding`].
///
/// ```
/// use qmp_core::encode::{Layout, LineEnding, Style};
/// let style = Style::new(Layout::Pretty, LineEnding::Lf);
/// assert_eq!(style, Style::QGA.with_layout(Layout::Pretty));
/// assert_eq!(style.line_ending(), LineEnding::Lf);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Style {
    layout: Layout,
    line_ending: LineEnding,
}

impl Style {
    /// A style from its spacing and its line ending.
    pub const fn new(layout: Layout, line_ending: LineEnding) -> Self {
        Style {
            layout,
            line_ending,
        }
    }

    /// This style with another spacing.
    #[must_use]
    pub const fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// This style with another line ending.
    #[must_use]
    pub const fn with_line_ending(mut self, line_ending: LineEnding) -> Self {
        self.line_ending = line_ending;
        self
    }

    /// Spacing.
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// Line ending: appended after each message, and used for the newlines
    /// of pretty output.
    pub const fn line_ending(&self) -> LineEnding {
        self.line_ending
    }

    /// QMP server output: compact, `\r\n`.
    pub const QMP: Style = Style {
        layout: Layout::Compact,
        line_ending: LineEnding::CrLf,
    };
    /// QMP server output with `pretty=on`.
    pub const QMP_PRETTY: Style = Style {
        layout: Layout::Pretty,
        line_ending: LineEnding::CrLf,
    };
    /// Guest-agent output: compact, `\n`.
    pub const QGA: Style = Style {
        layout: Layout::Compact,
        line_ending: LineEnding::Lf,
    };
    /// Client commands like python `qemu.qmp`: no spaces, no line ending.
    pub const CLIENT: Style = Style {
        layout: Layout::Minimal,
        line_ending: LineEnding::None,
    };
}

impl Default for Style {
    fn default() -> Self {
        Style::QMP
    }
}
