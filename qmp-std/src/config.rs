//! [`Config`]: the settings of the QMP client and the guest-agent client
//! (one type; each setting says which client uses it).

use crate::client::Notice;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Default largest message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// Default event queue length (per queue).
pub const DEFAULT_EVENT_QUEUE: usize = 1024;
/// Default time to connect and complete the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a guest-agent sync may take (all its attempts together).
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// Notices kept before the oldest is dropped (and counted), without a
/// [`Config::on_notice`] hook.
pub const NOTICE_QUEUE: usize = 256;

/// Where notices go as they arrive ([`Config::on_notice`]).
pub type NoticeHook = Arc<dyn Fn(&Notice) + Send + Sync>;

/// Client settings (builder style), for [`Client`](crate::client::Client)
/// and [`Qga`](crate::qga::Qga), and the tokio clients (`AsyncClient`,
/// `AsyncQga`).
#[derive(Clone)]
pub struct Config {
    pub(crate) connect_timeout: Duration,
    pub(crate) retry_connect: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) sync_timeout: Duration,
    pub(crate) max_message: usize,
    pub(crate) oob: bool,
    pub(crate) event_queue: usize,
    pub(crate) on_notice: Option<NoticeHook>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_connect", &self.retry_connect)
            .field("timeout", &self.timeout)
            .field("sync_timeout", &self.sync_timeout)
            .field("max_message", &self.max_message)
            .field("oob", &self.oob)
            .field("event_queue", &self.event_queue)
            .field("on_notice", &self.on_notice.is_some())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// Connect (retrying) + handshake within 5 s; no default per-call
    /// timeout; guest-agent syncs within 5 s; 16 MiB messages; `oob`
    /// enabled when offered; 1024 queued events per queue; notices queued.
    pub fn new() -> Self {
        Config {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry_connect: true,
            timeout: None,
            sync_timeout: DEFAULT_SYNC_TIMEOUT,
            max_message: DEFAULT_MAX_MESSAGE,
            oob: true,
            event_queue: DEFAULT_EVENT_QUEUE,
            on_notice: None,
        }
    }

    /// Time allowed for connecting (with retries) and the handshake
    /// together: the QMP greeting and negotiation, or the first guest-agent
    /// sync (which also keeps within [`Config::sync_timeout`]).
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Whether to retry while the socket is missing (`ENOENT`) or refuses
    /// (`ECONNREFUSED`), until the connect timeout (default: yes).
    #[must_use]
    pub fn retry_connect(mut self, retry: bool) -> Self {
        self.retry_connect = retry;
        self
    }

    /// The timeout of every call that does not set its own
    /// ([`Call::timeout`](crate::client::Call::timeout)); `None` (the
    /// default) waits forever.
    #[must_use]
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    /// Guest agent: the time one sync may take, its (up to three) attempts
    /// together (default 5 s).
    #[must_use]
    pub fn sync_timeout(mut self, t: Duration) -> Self {
        self.sync_timeout = t;
        self
    }

    /// The largest message that can be received (the framer buffer,
    /// reserved once per client as an anonymous mapping that the kernel
    /// backs page by page as messages fill it: an idle client holds a few
    /// KiB of it, not 16 MiB; default 16 MiB).
    #[must_use]
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(64);
        self
    }

    /// QMP: whether to enable `oob` when the server offers it (default:
    /// yes).
    #[must_use]
    pub fn oob(mut self, oob: bool) -> Self {
        self.oob = oob;
        self
    }

    /// QMP: how many events each queue (the general one and each
    /// subscription, or tokio `EventStream`) holds before the oldest is
    /// dropped and counted; 0 disables the general queue (events then go
    /// to subscriptions only).
    #[must_use]
    pub fn event_queue(mut self, len: usize) -> Self {
        self.event_queue = len;
        self
    }

    /// Hands every [`Notice`] to `hook` as it arrives (while the client
    /// reads), instead of queueing it for `take_notices`: e.g. to print a
    /// warning at once. With the tokio clients it runs on the connection's
    /// driver task with the connection locked: it must not call the
    /// client.
    #[must_use]
    pub fn on_notice(mut self, hook: impl Fn(&Notice) + Send + Sync + 'static) -> Self {
        self.on_notice = Some(Arc::new(hook));
        self
    }
}
