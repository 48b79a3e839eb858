//! The OpenSIPS 4.0 Management Interface: JSON-RPC 2.0 requests resolved against commands
//! named `module:command` (with legacy aliases and unique short names), their parameters
//! matched against each command's recipes, answered in compact single-line JSON. The
//! transports (`http`, `fifo`, `datagram`) only move bytes to [`Mi::handle`].

pub mod datagram;
pub mod fifo;
mod html;
pub mod http;
pub mod xmlrpc;

use std::sync::Arc;

use serde_json::{Map, Value};

/// A command's failure, as the JSON-RPC `error` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiError {
    pub code: i64,
    pub message: String,
    pub data: Option<String>,
}

impl MiError {
    pub fn new(code: i64, message: impl Into<String>) -> MiError {
        MiError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: impl Into<String>) -> MiError {
        self.data = Some(data.into());
        self
    }

    /// JSON-RPC -32602, with what is wrong.
    pub fn invalid_params(data: &str) -> MiError {
        MiError::new(-32602, "Invalid params").with_data(data)
    }
}

/// The parameters a command got, by name (positional ones are named by the recipe).
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: Map<String, Value>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// A string parameter (numbers are converted, as OpenSIPS does).
    pub fn str(&self, name: &str) -> Result<Option<String>, MiError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(MiError::invalid_params(&format!(
                "Bad type for parameter '{name}'"
            ))),
        }
    }

    /// An integer parameter (numeric strings accepted).
    pub fn int(&self, name: &str) -> Result<Option<i64>, MiError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                MiError::invalid_params(&format!("Bad type for parameter '{name}'"))
            }),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| {
                    MiError::invalid_params(&format!("Bad type for parameter '{name}'"))
                })
            }
            Some(_) => Err(MiError::invalid_params(&format!(
                "Bad type for parameter '{name}'"
            ))),
        }
    }

    /// An array parameter (a lone string counts as a one-element array).
    pub fn array(&self, name: &str) -> Result<Option<Vec<String>>, MiError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(MiError::invalid_params(&format!(
                        "Bad type for parameter '{name}'"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(_) => Err(MiError::invalid_params(&format!(
                "Bad type for parameter '{name}'"
            ))),
        }
    }
}

/// What a command runs.
pub type Handler = Arc<dyn Fn(&Params) -> Result<Value, MiError> + Send + Sync>;

/// One MI command.
#[derive(Clone)]
pub struct Command {
    /// The 4.0 full name, `module:command`.
    pub name: String,
    /// Legacy names (`ps`, `get_statistics` …).
    pub aliases: Vec<String>,
    /// The accepted parameter-name sets; `[]` takes no parameters.
    pub recipes: Vec<Vec<&'static str>>,
    /// Accepts only named parameters (tm:uac_dlg, tm:reply …).
    pub named_only: bool,
    pub handler: Handler,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.name)
            .field("aliases", &self.aliases)
            .field("recipes", &self.recipes)
            .finish_non_exhaustive()
    }
}

impl Command {
    pub fn new(
        name: &str,
        aliases: &[&str],
        recipes: &[&[&'static str]],
        handler: impl Fn(&Params) -> Result<Value, MiError> + Send + Sync + 'static,
    ) -> Command {
        Command {
            name: name.to_owned(),
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            recipes: recipes.iter().map(|r| r.to_vec()).collect(),
            named_only: false,
            handler: Arc::new(handler),
        }
    }

    /// The part after `module:`.
    fn short(&self) -> &str {
        self.name.split_once(':').map_or(&self.name, |(_, c)| c)
    }

    fn bind(&self, params: Option<&Value>) -> Result<Params, MiError> {
        let mut values = Map::new();
        match params {
            None | Some(Value::Null) => {
                if !self.recipes.iter().any(Vec::is_empty) {
                    return Err(MiError::invalid_params("Too few or too many parameters"));
                }
            }
            Some(Value::Array(args)) => {
                if self.named_only && !args.is_empty() {
                    return Err(MiError::invalid_params(
                        "Command only supports named parameters",
                    ));
                }
                let fits: Vec<&Vec<&str>> = self
                    .recipes
                    .iter()
                    .filter(|r| r.len() == args.len())
                    .collect();
                let recipe = match fits.as_slice() {
                    [] => return Err(MiError::invalid_params("Too few or too many parameters")),
                    [one] => *one,
                    _ => {
                        return Err(MiError::invalid_params(
                            "Ambiguous call, use named parameters instead",
                        ));
                    }
                };
                for (name, v) in recipe.iter().zip(args) {
                    values.insert((*name).to_owned(), v.clone());
                }
            }
            Some(Value::Object(named)) => {
                let matches = self
                    .recipes
                    .iter()
                    .any(|r| r.len() == named.len() && r.iter().all(|n| named.contains_key(*n)));
                if !matches {
                    return Err(MiError::invalid_params("Named parameters do not match"));
                }
                values = named.clone();
            }
            Some(_) => return Err(MiError::new(-32600, "Invalid Request")),
        }
        Ok(Params { values })
    }
}

/// The registered commands.
#[derive(Debug, Default, Clone)]
pub struct Mi {
    commands: Vec<Command>,
}

/// Largest request any transport passes on.
pub const MAX_REQUEST: usize = 1 << 20;

/// Runs a command's handler; a panic in it (a bug) becomes a JSON-RPC internal error for this
/// call instead of ending the transport's thread.
fn run(c: &Command, p: &Params) -> Result<Value, MiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.handler)(p))).unwrap_or_else(
        |payload| {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(MiError::new(-32603, "Internal error").with_data(text))
        },
    )
}

fn response(id: &Value, body: Result<Value, MiError>) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "null".into());
    match body {
        Ok(result) => format!(
            "{{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":{id}}}",
            serde_json::to_string(&result).unwrap_or_else(|_| "null".into())
        ),
        Err(e) => {
            let mut err = Map::new();
            err.insert("code".into(), Value::from(e.code));
            err.insert("message".into(), Value::from(e.message));
            if let Some(d) = e.data {
                err.insert("data".into(), Value::from(d));
            }
            format!(
                "{{\"jsonrpc\":\"2.0\",\"error\":{},\"id\":{id}}}",
                serde_json::to_string(&Value::Object(err)).unwrap_or_else(|_| "null".into())
            )
        }
    }
}

impl Mi {
    pub fn new() -> Mi {
        Mi::default()
    }

    pub fn add(&mut self, c: Command) {
        self.commands.push(c);
    }

    /// Every command's full name, sorted (`which`).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.commands.iter().map(|c| c.name.clone()).collect();
        v.sort();
        v
    }

    /// Every legacy alias, sorted.
    pub fn aliases(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .commands
            .iter()
            .flat_map(|c| c.aliases.iter().cloned())
            .collect();
        v.sort();
        v
    }

    /// The command a method name means: its full name, a unique short name, or an alias.
    pub fn find(&self, method: &str) -> Result<&Command, MiError> {
        if let Some(c) = self.commands.iter().find(|c| c.name == method) {
            return Ok(c);
        }
        if !method.contains(':') {
            let short: Vec<&Command> = self
                .commands
                .iter()
                .filter(|c| c.short() == method)
                .collect();
            match short.as_slice() {
                [one] => return Ok(one),
                [] => {}
                many => {
                    let names: Vec<&str> = many.iter().map(|c| c.name.as_str()).collect();
                    return Err(MiError::new(-32001, "Method ambiguous")
                        .with_data(format!("supported names: {}", names.join(", "))));
                }
            }
        }
        self.commands
            .iter()
            .find(|c| c.aliases.iter().any(|a| a == method))
            .ok_or_else(|| MiError::new(-32601, "Method not found"))
    }

    /// Runs `method` with `params` (an array, an object, or none) as a request would, without
    /// the JSON-RPC envelope (the script's `mi()` of mi_script).
    pub fn call(&self, method: &str, params: Option<&Value>) -> Result<Value, MiError> {
        let c = self.find(method)?;
        let p = c.bind(params)?;
        run(c, &p)
    }

    /// One request → its response line (`None`: a notification, nothing to send back).
    pub fn handle(&self, request: &[u8]) -> Option<String> {
        let null = Value::Null;
        if request.len() > MAX_REQUEST {
            return Some(response(
                &null,
                Err(MiError::new(-32600, "Invalid Request").with_data("request too large")),
            ));
        }
        let parsed: Value = match serde_json::from_slice(request) {
            Ok(v) => v,
            Err(_) => return Some(response(&null, Err(MiError::new(-32700, "Parse error")))),
        };
        let Value::Object(req) = parsed else {
            return Some(response(
                &null,
                Err(MiError::new(-32600, "Invalid Request")),
            ));
        };
        let id = req.get("id").cloned();
        let valid_id = matches!(
            id,
            None | Some(Value::Null | Value::String(_) | Value::Number(_))
        );
        let method = match req.get("method") {
            Some(Value::String(m))
                if valid_id && req.get("jsonrpc") == Some(&Value::from("2.0")) =>
            {
                m
            }
            _ => {
                return Some(response(
                    id.as_ref().filter(|_| valid_id).unwrap_or(&null),
                    Err(MiError::new(-32600, "Invalid Request")),
                ));
            }
        };
        let result = self
            .find(method)
            .and_then(|c| c.bind(req.get("params")).map(|p| (c, p)))
            .and_then(|(c, p)| run(c, &p));
        // A notification gets no answer.
        let id = id?;
        Some(response(&id, result))
    }
}

#[cfg(test)]
mod tests;
