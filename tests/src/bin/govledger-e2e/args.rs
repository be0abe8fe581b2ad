//! A tiny `--flag value` parser (the tests crate has no argument-parsing dependency).

use std::collections::BTreeMap;
use std::time::Duration;

/// Parsed flags: every flag takes one value and may repeat.
pub struct Args {
    values: BTreeMap<String, Vec<String>>,
}

impl Args {
    /// Parses `--name value` pairs; anything else is an error.
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!(
                    "unexpected argument {flag:?} (flags are --name value)"
                ));
            };
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            values
                .entry(name.to_string())
                .or_default()
                .push(value.clone());
        }
        Ok(Args { values })
    }

    /// Every value of a repeatable flag; comma-separated lists are split.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The last value of a flag.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// A required flag.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    /// A number of seconds, with a default.
    pub fn secs(&self, name: &str, default: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(self.number(name, default)?))
    }

    /// An unsigned number, with a default.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} must be a whole number, not {v:?}")),
        }
    }

    /// Names of flags that `allowed` does not list (typos).
    pub fn reject_unknown(&self, allowed: &[&str]) -> Result<(), String> {
        match self.values.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "unknown flag --{k}; known: {}",
                allowed
                    .iter()
                    .map(|a| format!("--{a}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            None => Ok(()),
        }
    }
}
