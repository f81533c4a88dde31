//! What an agent serves and the buffers it works in: [`AgentConfig`],
//! [`CommandSpec`], [`Throttle`], [`Protocol`], [`AgentBuffers`].

use crate::encode::Style;
use crate::scan::FramerConfig;
use crate::schema::decl::{EventDecl, ObjectDecl, TypeDecl};

/// QEMU's in-band queue limit (`QMP_REQ_QUEUE_LEN_MAX`).
pub const QUEUE_LEN_MAX: usize = 8;

/// How many event names (or keys) can be in a throttle window at once.
pub const THROTTLE_SLOTS: usize = 4;

/// Bytes of queue bookkeeping per queued message.
pub(crate) const ENTRY_HEADER: usize = 9;
/// Largest fixed text around a JSON error's token.
pub(crate) const ERROR_TEXT_SLACK: usize = 64;

/// A command the application serves.
///
/// ```
/// use qmp_core::agent::CommandSpec;
/// const COMMANDS: &[CommandSpec<'static>] = &[
///     CommandSpec::new("query-status"),
///     CommandSpec::new("migrate-pause").oob(),
///     CommandSpec::new("guest-shutdown").no_success_response(),
/// ];
/// assert!(COMMANDS[1].allows_oob() && !COMMANDS[2].success_response());
/// ```
///
/// A command may declare its argument and return types (see
/// [`crate::schema::decl`]): the agent then lists them in its
/// `query-qmp-schema` (feature `introspection`, on by default) and checks
/// the arguments itself, answering QEMU's
/// errors (`Parameter 'x' is missing`, ...) before the application sees
/// the request. A command that declares nothing is handed every request,
/// as before, and introspects as taking no arguments and returning `{}`.
///
/// ```
/// use qmp_core::agent::CommandSpec;
/// use qmp_core::schema::decl::{MemberDecl, ObjectDecl, TypeDecl};
/// static ARGS: ObjectDecl<'static> =
///     ObjectDecl::new("q_obj_blink-arg", &[MemberDecl::new("times", TypeDecl::INT)]);
/// const BLINK: CommandSpec<'static> = CommandSpec::new("blink")
///     .with_arguments(&ARGS)
///     .with_features(&["unstable"]);
/// assert_eq!(BLINK.arguments().map(|a| a.members().len()), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct CommandSpec<'a> {
    name: &'a str,
    allow_oob: bool,
    success_response: bool,
    arguments: Option<&'a ObjectDecl<'a>>,
    returns: Option<TypeDecl<'a>>,
    features: &'a [&'a str],
}

impl<'a> CommandSpec<'a> {
    /// An in-band command (exact, case-sensitive name) that replies on
    /// success.
    pub const fn new(name: &'a str) -> Self {
        CommandSpec {
            name,
            allow_oob: false,
            success_response: true,
            arguments: None,
            returns: None,
            features: &[],
        }
    }

    /// Declares the argument type: the agent checks arguments against it
    /// and lists it in `query-qmp-schema`.
    #[must_use]
    pub const fn with_arguments(mut self, arguments: &'a ObjectDecl<'a>) -> Self {
        self.arguments = Some(arguments);
        self
    }

    /// Declares the return type (for `query-qmp-schema`; replies are not
    /// checked).
    #[must_use]
    pub const fn with_returns(mut self, returns: TypeDecl<'a>) -> Self {
        self.returns = Some(returns);
        self
    }

    /// Declares features (`deprecated`, `unstable`, ...).
    #[must_use]
    pub const fn with_features(mut self, features: &'a [&'a str]) -> Self {
        self.features = features;
        self
    }

    /// The declared argument type.
    pub const fn arguments(&self) -> Option<&'a ObjectDecl<'a>> {
        self.arguments
    }

    /// The declared return type.
    pub const fn returns(&self) -> Option<TypeDecl<'a>> {
        self.returns
    }

    /// The declared features.
    pub const fn features(&self) -> &'a [&'a str] {
        self.features
    }

    /// Allows `exec-oob` for this command.
    #[must_use]
    pub const fn oob(mut self) -> Self {
        self.allow_oob = true;
        self
    }

    /// Sends nothing on success (QGA's `'success-response': false`).
    #[must_use]
    pub const fn no_success_response(mut self) -> Self {
        self.success_response = false;
        self
    }

    /// The command name.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// Whether `exec-oob` may run it.
    pub const fn allows_oob(&self) -> bool {
        self.allow_oob
    }

    /// Whether success sends a reply.
    pub const fn success_response(&self) -> bool {
        self.success_response
    }
}

/// Which protocol the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Protocol {
    /// QMP: greeting, negotiation, `\r\n`.
    Qmp,
    /// The guest agent: no greeting, no negotiation, no OOB, `\n`, and
    /// `guest-sync`/`guest-sync-delimited` answered by the agent when listed
    /// (see [`crate::qga::agent`]). Feature `qga` (on by default).
    #[cfg(feature = "qga")]
    Qga,
}

impl Protocol {
    /// Whether this is the guest agent (never without the `qga` feature:
    /// every path of the dialect then leaves the image).
    pub(crate) const fn is_qga(self) -> bool {
        match self {
            #[cfg(feature = "qga")]
            Protocol::Qga => true,
            _ => false,
        }
    }
}

/// An event throttling rule (QEMU's `monitor_qapi_event_conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Throttle<'a> {
    event: &'a str,
    window_ms: u64,
}

impl<'a> Throttle<'a> {
    /// Throttles `event` to one per `window_ms` milliseconds (QEMU: 1000).
    pub const fn new(event: &'a str, window_ms: u64) -> Self {
        Throttle { event, window_ms }
    }

    /// The event name.
    pub const fn event(&self) -> &'a str {
        self.event
    }

    /// The window in milliseconds.
    pub const fn window_ms(&self) -> u64 {
        self.window_ms
    }
}

/// Agent settings. [`AgentConfig::new`] is QMP as QEMU 10 serves it;
/// [`AgentConfig::qga`] the guest agent. Defaults beyond the constructor's
/// arguments: `oob` offered (QMP), compact output ([`Style::QMP`] /
/// [`Style::QGA`]), no throttled events, in-band queue
/// [`QUEUE_LEN_MAX`] with OOB (1 for the guest agent), QEMU's framing
/// rules.
///
/// ```
/// use qmp_core::agent::{AgentConfig, CommandSpec, Throttle};
/// use qmp_core::encode::Style;
/// const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("query-status")];
/// const THROTTLE: &[Throttle<'static>] = &[Throttle::new("RTC_CHANGE", 1000)];
/// let cfg = AgentConfig::new((10, 0, 2), "my-firmware", COMMANDS)
///     .with_style(Style::QMP_PRETTY)
///     .with_throttle(THROTTLE);
/// assert!(cfg.offers_oob());
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AgentConfig<'a> {
    pub(crate) version: (u64, u64, u64),
    pub(crate) package: &'a str,
    pub(crate) offer_oob: bool,
    pub(crate) style: Style,
    pub(crate) commands: &'a [CommandSpec<'a>],
    pub(crate) events: &'a [EventDecl<'a>],
    pub(crate) throttle: &'a [Throttle<'a>],
    pub(crate) max_queue: usize,
    pub(crate) protocol: Protocol,
    pub(crate) framer: FramerConfig,
}

impl<'a> AgentConfig<'a> {
    /// QMP: the greeting's `(major, minor, micro)` and `package`, and the
    /// commands served besides `qmp_capabilities` (always served);
    /// `query-commands` and `query-qmp-schema` listed there are answered by
    /// the agent from this table (`query-qmp-schema` with the feature
    /// `introspection`, on by default; without it the application gets it
    /// like any other command).
    pub const fn new(
        version: (u64, u64, u64),
        package: &'a str,
        commands: &'a [CommandSpec<'a>],
    ) -> Self {
        AgentConfig {
            version,
            package,
            offer_oob: true,
            style: Style::QMP,
            commands,
            events: &[],
            throttle: &[],
            max_queue: QUEUE_LEN_MAX,
            protocol: Protocol::Qmp,
            framer: FramerConfig::new(),
        }
    }

    /// The guest-agent dialect serving `commands` (feature `qga`).
    #[cfg(feature = "qga")]
    pub const fn qga(commands: &'a [CommandSpec<'a>]) -> Self {
        AgentConfig {
            version: (0, 0, 0),
            package: "",
            offer_oob: false,
            style: Style::QGA,
            commands,
            events: &[],
            throttle: &[],
            max_queue: 1,
            protocol: Protocol::Qga,
            framer: FramerConfig::new(),
        }
    }

    /// Whether `oob` is offered in the greeting (default yes for QMP).
    #[must_use]
    pub const fn with_oob(mut self, offer: bool) -> Self {
        self.offer_oob = offer;
        self
    }

    /// The output style: [`Style::QMP_PRETTY`] for QEMU's `pretty=on`.
    #[must_use]
    pub const fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    /// The events the application emits, for `query-qmp-schema` (not
    /// enforced by [`Agent::emit`](crate::agent::Agent::emit)).
    #[must_use]
    pub const fn with_events(mut self, events: &'a [EventDecl<'a>]) -> Self {
        self.events = events;
        self
    }

    /// Throttled events.
    #[must_use]
    pub const fn with_throttle(mut self, throttle: &'a [Throttle<'a>]) -> Self {
        self.throttle = throttle;
        self
    }

    /// The in-band queue limit with OOB enabled (QEMU: 8; at least 1).
    #[must_use]
    pub const fn with_max_queue(mut self, max: usize) -> Self {
        self.max_queue = if max == 0 { 1 } else { max };
        self
    }

    /// Framer settings.
    #[must_use]
    pub const fn with_framer(mut self, framer: FramerConfig) -> Self {
        self.framer = framer;
        self
    }

    /// The greeting's version.
    pub const fn version(&self) -> (u64, u64, u64) {
        self.version
    }

    /// Whether `oob` is offered.
    pub const fn offers_oob(&self) -> bool {
        self.offer_oob
    }

    /// The output style.
    pub const fn style(&self) -> Style {
        self.style
    }

    /// The commands served.
    pub const fn commands(&self) -> &'a [CommandSpec<'a>] {
        self.commands
    }

    /// The declared events.
    pub const fn events(&self) -> &'a [EventDecl<'a>] {
        self.events
    }

    /// The protocol.
    pub const fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// The buffers an agent works in.
///
/// * `framer`: input messages are framed here; its size is the request
///   size limit;
/// * `queue`: queued in-band requests; at least
///   [`AgentBuffers::queue_required`] of the framer's size (one maximal
///   message plus 73 bytes); more lets more requests wait while one runs;
/// * `out`: output waiting for `poll_transmit`; its size bounds one reply
///   or event;
/// * throttle storage ([`AgentBuffers::with_throttle`]): throttled events
///   waiting for their window to end, shared evenly by up to
///   [`THROTTLE_SLOTS`] event names (none needed when nothing is
///   throttled).
#[derive(Debug)]
#[non_exhaustive]
pub struct AgentBuffers<'b> {
    pub(crate) framer: &'b mut [u8],
    pub(crate) queue: &'b mut [u8],
    pub(crate) out: &'b mut [u8],
    pub(crate) throttle: &'b mut [u8],
}

impl<'b> AgentBuffers<'b> {
    /// Buffers without throttle storage.
    pub fn new(framer: &'b mut [u8], queue: &'b mut [u8], out: &'b mut [u8]) -> Self {
        AgentBuffers {
            framer,
            queue,
            out,
            throttle: &mut [],
        }
    }

    /// Adds storage for throttled events.
    #[must_use]
    pub fn with_throttle(mut self, throttle: &'b mut [u8]) -> Self {
        self.throttle = throttle;
        self
    }

    /// The smallest queue buffer for a framer buffer of `framer_len` bytes.
    pub const fn queue_required(framer_len: usize) -> usize {
        framer_len + ENTRY_HEADER + ERROR_TEXT_SLACK
    }
}
