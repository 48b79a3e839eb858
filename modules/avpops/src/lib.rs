//! The OpenSIPS 3.0–3.4 `avpops` module (skeleton: functions land with the module).
#![forbid(unsafe_code)]

use engine::{ModuleSpec, Script};

pub static MODULE: ModuleSpec = ModuleSpec {
    name: "avpops",
    functions: &[],
    params: &[],
};

/// Connects the module's databases when the script loads it.
pub fn start(_script: &Script, _options: &db::Options) -> Result<(), String> {
    Ok(())
}
