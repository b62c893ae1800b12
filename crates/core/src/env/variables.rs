//! The shared vocabulary of module settings: a [`Variable`] as a module
//! declares it and a [`Reader`] that reads declared variables with their
//! declared defaults.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use super::{ConfigError, Env, RateLimit, Secret};

/// The default of a [`Variable`] that has none: reading it without a value
/// is an error.
pub const REQUIRED: &str = "(required)";

/// One variable a module reads: its name, its default as an operator would
/// write it ([`REQUIRED`] for none, empty for "unset"), and what it means.
/// Each module lists its own in a `VARIABLES` slice; the binary chains them
/// to warn about unknown names and to check the README table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

impl Variable {
    pub const fn new(name: &'static str, default: &'static str, meaning: &'static str) -> Self {
        Self {
            name,
            default,
            meaning,
        }
    }

    /// A variable with no default: reading it without a value is an error.
    pub const fn required(name: &'static str, meaning: &'static str) -> Self {
        Self::new(name, REQUIRED, meaning)
    }

    /// A variable that is unset (empty) unless the operator sets it.
    pub const fn unset(name: &'static str, meaning: &'static str) -> Self {
        Self::new(name, "", meaning)
    }

    pub fn is_required(&self) -> bool {
        self.default == REQUIRED
    }
}

/// Reads variables declared in one module's list, each with the default
/// written there, so a default lives in exactly one place. Reading a name
/// the list does not declare is a programming error and panics: every
/// module's settings test reads all of its variables, so it shows there.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    env: &'a Env,
    declared: &'a [Variable],
}

impl<'a> Reader<'a> {
    pub fn new(env: &'a Env, declared: &'a [Variable]) -> Self {
        Self { env, declared }
    }

    fn variable(&self, name: &str) -> &'a Variable {
        self.declared
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("{name} is read but not declared in its VARIABLES"))
    }

    fn assert_declared(&self, name: &str) {
        self.variable(name);
    }

    fn default_of(&self, name: &str) -> &'a str {
        let v = self.variable(name);
        assert!(
            !v.is_required(),
            "{name} has no default: read it with `required`"
        );
        v.default
    }

    /// A duration longer than zero.
    pub fn duration(&self, name: &str) -> Result<Duration, ConfigError> {
        self.env.positive_duration_or(name, self.default_of(name))
    }

    pub fn rate(&self, name: &str) -> Result<RateLimit, ConfigError> {
        self.env.parse_or(name, self.default_of(name))
    }

    pub fn addr(&self, name: &str) -> Result<SocketAddr, ConfigError> {
        self.env.socket_addr_or(name, self.default_of(name))
    }

    pub fn string(&self, name: &str) -> String {
        self.env.string_or(name, self.default_of(name))
    }

    /// The value, or `None` when unset or empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.assert_declared(name);
        self.env.get(name).map(str::to_owned)
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.assert_declared(name);
        self.env.required(name)
    }

    /// A secret; empty when unset.
    pub fn secret(&self, name: &str) -> Secret {
        self.assert_declared(name);
        self.env.secret(name)
    }

    pub fn required_secret(&self, name: &str) -> Result<Secret, ConfigError> {
        self.assert_declared(name);
        self.env.required_secret(name)
    }

    /// One of `allowed`, lower-cased.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        self.env.choice_or(name, self.default_of(name), allowed)
    }

    /// The value paired with one of `options`' names (case-insensitive).
    pub fn pick<T: Copy>(&self, name: &str, options: &[(&str, T)]) -> Result<T, ConfigError> {
        self.env.pick_or(name, self.default_of(name), options)
    }

    /// Any `FromStr` value.
    pub fn parse<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.env.parse_or(name, self.default_of(name))
    }

    /// A count of at least 1.
    pub fn count<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + From<u8>,
        T::Err: fmt::Display,
    {
        let v: T = self.parse(name)?;
        if v < T::from(1) {
            return Err(ConfigError::new(name, "must be at least 1"));
        }
        Ok(v)
    }

    /// A count from 1 to `max`.
    pub fn count_up_to<T>(&self, name: &str, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + From<u8> + fmt::Display,
        T::Err: fmt::Display,
    {
        let v: T = self.count(name)?;
        if v > max {
            return Err(ConfigError::new(name, format!("must be at most {max}")));
        }
        Ok(v)
    }
}

/// For the modules' settings tests: `from_env` refuses each `(name, value)`
/// of `bad`, set over `base`, with an error that names `name`.
pub fn assert_each_names_its_variable<T>(
    from_env: impl Fn(&Env) -> Result<T, ConfigError>,
    base: &[(&str, &str)],
    bad: &[(&str, &str)],
) {
    for &(name, value) in bad {
        let env = Env::from_pairs(base.iter().copied().chain([(name, value)]));
        match from_env(&env) {
            Ok(_) => panic!("{name}={value:?} was accepted"),
            Err(err) => assert_eq!(err.variable, name, "{name}={value:?} gave {err}"),
        }
    }
}

/// A plausible email address for configuration (`local@domain.tld`, no
/// whitespace); the sign-up validator in the user module is stricter.
pub fn looks_like_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain))
        if !local.is_empty() && domain.contains('.') && !s.chars().any(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[Variable] = &[
        Variable::new("X_PERIOD", "2s", "a period"),
        Variable::new("X_COUNT", "3", "a count"),
        Variable::new("X_NEEDED", REQUIRED, "no default"),
        Variable::new("X_NOTE", "", "empty by default"),
    ];

    #[test]
    fn a_reader_takes_defaults_from_the_declared_list() {
        let env = Env::from_pairs([("X_COUNT", "0"), ("X_NEEDED", "here")]);
        let r = Reader::new(&env, DECLARED);
        assert_eq!(r.duration("X_PERIOD").unwrap(), Duration::from_secs(2));
        assert_eq!(
            r.count::<u32>("X_COUNT").unwrap_err().problem,
            "must be at least 1"
        );
        assert_eq!(r.required("X_NEEDED").unwrap(), "here");
        assert_eq!(r.optional("X_NOTE"), None);
        assert_eq!(r.string("X_NOTE"), "");
        assert!(DECLARED[2].is_required() && !DECLARED[3].is_required());
        let options = [("two", 2), ("three", 3)];
        assert_eq!(
            r.pick("X_COUNT", &options).unwrap_err().problem,
            "invalid value \"0\": expected one of two, three"
        );
        let env = Env::from_pairs([("X_COUNT", "Three")]);
        assert_eq!(
            Reader::new(&env, DECLARED)
                .pick("X_COUNT", &options)
                .unwrap(),
            3
        );
        let env = Env::from_pairs([("X_PERIOD", "0s")]);
        let err = Reader::new(&env, DECLARED)
            .duration("X_PERIOD")
            .unwrap_err();
        assert_eq!(err.variable, "X_PERIOD");
    }

    #[test]
    #[should_panic(expected = "X_OTHER is read but not declared")]
    fn reading_an_undeclared_variable_is_a_bug() {
        let env = Env::default();
        Reader::new(&env, DECLARED).optional("X_OTHER");
    }

    #[test]
    fn email_plausibility() {
        assert!(looks_like_email("ops@example.com"));
        for bad in ["ops", "@example.com", "ops@localhost", "o ps@example.com"] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
