//! The calls the QMP client and the guest-agent client share, written once:
//! `client_calls!(Type)` inside `impl<T: Transport> Type<T>` adds them, on
//! the type's `link` and its `prepare` (what the dialect does before a
//! command: nothing for QMP; for the guest agent, refuse `exec-oob` and
//! sync when needed).

macro_rules! client_calls {
    ($ty:ident) => {
        /// Runs `name` with `args` (any `Serialize` giving a JSON object;
        /// `&()` for none) and deserializes the return value (64-bit
        /// integers exact).
        ///
        /// # Errors
        /// [`Error::Qmp`] for an error reply; see [`Error`] for the rest.
        pub fn execute<R: serde::de::DeserializeOwned, A: serde::Serialize + ?Sized>(
            &mut self,
            name: &str,
            args: &A,
        ) -> Result<R, Error> {
            self.call_typed(Call::new(name).args(args)?)
        }

        /// Runs `name` with optional arguments as JSON text (one object)
        /// and returns the `return` value as JSON text, as received.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($ty), "::execute`].")]
        pub fn execute_raw(
            &mut self,
            name: &str,
            args_json: Option<&str>,
        ) -> Result<String, Error> {
            let mut call = Call::new(name);
            if let Some(a) = args_json {
                call = call.args_json(a);
            }
            self.call(call)
        }

        /// Runs one call; returns the `return` value as JSON text.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($ty), "::execute`].")]
        pub fn call(&mut self, call: Call<'_>) -> Result<String, Error> {
            self.prepare(&call)?;
            let p = self.link.send(&call)?;
            self.link.wait(p)
        }

        /// Runs one call and deserializes the return value.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($ty), "::execute`].")]
        pub fn call_typed<R: serde::de::DeserializeOwned>(
            &mut self,
            call: Call<'_>,
        ) -> Result<R, Error> {
            self.prepare(&call)?;
            let p = self.link.send(&call)?;
            self.link.wait_typed(p)
        }

        /// The timeout of calls that do not set their own.
        pub fn timeout(&self) -> Option<std::time::Duration> {
            self.link.cfg.timeout
        }

        /// Sets the timeout of calls that do not set their own (`None`:
        /// wait forever).
        pub fn set_timeout(&mut self, timeout: Option<std::time::Duration>) {
            self.link.cfg.timeout = timeout;
        }

        /// Whether the connection is closed (by the peer or after an
        /// error).
        pub fn is_closed(&self) -> bool {
            self.link.is_closed()
        }

        /// The transport.
        pub fn transport(&self) -> &T {
            &self.link.io
        }

        /// Everything the peer sent that belonged to no call (see
        /// [`Notice`]; empty with a [`Config::on_notice`] hook).
        pub fn take_notices(&mut self) -> Vec<Notice> {
            self.link.inbox.take_notices()
        }

        /// Notices dropped because more than 256 were waiting.
        pub fn dropped_notices(&self) -> u64 {
            self.link.inbox.dropped_notices()
        }
    };
}
