//! The plain agentKeys `/dev/*` routes, answered inside the enclave (being written).

use sigil_protocol::{DevCall, Response};

use super::Enclave;
use crate::env::Env;
use crate::error::Error;

impl Enclave {
    /// Serves one `/dev/*` call: parses the client's body, answers, signs the answer.
    pub(super) fn dev_call(&mut self, _call: &DevCall, env: &mut impl Env) -> Result<Response, Error> {
        let _ = self.sign_response(b"", env)?;
        Err(Error::InvalidRequest("dev calls are not served yet"))
    }
}
