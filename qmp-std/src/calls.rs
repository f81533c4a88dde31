//! The calls the QMP client and the guest-agent client share, written once
//! for the blocking clients and the tokio ones: `client_calls!(Type)`
//! inside `impl<T: Transport> Type<T>` adds them to a blocking client,
//! `client_calls!(async Type)` to an async one (the same methods, `async`,
//! on `&self`: the handle is shared).
//!
//! They stand on three methods of the type: `prepare(call)` (what the
//! dialect does before a command: for QMP, the schema check when one is
//! set; for the guest agent,
//! refuse `exec-oob` and sync when needed), `run(call)` (send it and wait
//! for the return value's bytes), and `machine()` / `machine_mut()` (the
//! connection's [`Machine`](crate::machine::Machine), directly or through
//! the lock).

macro_rules! client_calls {
    ($ty:ident) => {
        client_calls!(@calls $ty, [mut], [], []);
        client_calls!(@state [mut]);

        /// The transport.
        pub fn transport(&self) -> &T {
            &self.link.io
        }
    };
    (async $ty:ident) => {
        client_calls!(@calls $ty, [], [async], [.await]);
        client_calls!(@state []);
    };
    (@calls $ty:ident, [$($mut:tt)?], [$($async:tt)*], [$($await:tt)*]) => {
        /// Runs `name` with `args` (any `Serialize` giving a JSON object;
        /// `&()` for none) and deserializes the return value (64-bit
        /// integers exact).
        ///
        /// # Errors
        /// [`Error::Qmp`] for an error reply; see [`Error`] for the rest.
        pub $($async)* fn execute<R: serde::de::DeserializeOwned, A: serde::Serialize + ?Sized>(
            &$($mut)? self,
            name: &str,
            args: &A,
        ) -> Result<R, Error> {
            self.call_typed(Call::new(name).args(args)?)$($await)*
        }

        /// Runs `name` with optional arguments as JSON text (one object)
        /// and returns the `return` value as JSON text, as received.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($ty), "::execute`].")]
        pub $($async)* fn execute_raw(
            &$($mut)? self,
            name: &str,
            args_json: Option<&str>,
        ) -> Result<String, Error> {
            let mut call = Call::new(name);
            if let Some(a) = args_json {
                call = call.args_json(a);
            }
            self.call(call)$($await)*
        }

        /// Runs one call; returns the `return` value as JSON text.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($ty), "::execute`].")]
        pub $($async)* fn call(&$($mut)? self, call: Call<'_>) -> Result<String, Error> {
            self.prepare(&call)$($await)*?;
            self.run(&call)$($await)*.map(crate::machine::text)
        }

        /// Runs one call and deserializes the return value.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($ty), "::execute`].")]
        pub $($async)* fn call_typed<R: serde::de::DeserializeOwned>(
            &$($mut)? self,
            call: Call<'_>,
        ) -> Result<R, Error> {
            self.prepare(&call)$($await)*?;
            let bytes = self.run(&call)$($await)*?;
            crate::machine::decode(call.name().to_owned(), &bytes)
        }
    };
    (@state [$($mut:tt)?]) => {
        /// The timeout of calls that do not set their own.
        pub fn timeout(&self) -> Option<std::time::Duration> {
            self.machine().cfg.timeout
        }

        /// Sets the timeout of calls that do not set their own (`None`:
        /// wait forever).
        pub fn set_timeout(&$($mut)? self, timeout: Option<std::time::Duration>) {
            self.machine_mut().cfg.timeout = timeout;
        }

        /// Whether the connection is closed (by the peer or after an
        /// error).
        pub fn is_closed(&self) -> bool {
            self.machine().is_closed()
        }

        /// Everything the peer sent that belonged to no call (see
        /// [`Notice`]; empty with a [`Config::on_notice`] hook).
        pub fn take_notices(&$($mut)? self) -> Vec<Notice> {
            self.machine_mut().inbox.take_notices()
        }

        /// Notices dropped because more than 256 were waiting.
        pub fn dropped_notices(&self) -> u64 {
            self.machine().inbox.dropped_notices()
        }
    };
}
