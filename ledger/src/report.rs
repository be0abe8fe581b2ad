//! Errors as one line for people: the error, then each cause that the text so far does not
//! already say. Many errors here name their cause in their own message *and* expose it as
//! their `source()` (so that programs can inspect it); printing the whole chain blindly
//! (`{:#}`) then said it twice ("No such file or directory (os error 2): No such file or
//! directory (os error 2)").

/// The error and its causes, each added (after `": "`) only when not already said.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read config {path}: {source}")]
    struct Says {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("starting the node")]
    struct Context {
        #[source]
        inner: Says,
    }

    #[test]
    fn a_cause_already_said_is_not_repeated_and_one_not_said_is_added() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Says {
            path: "a.toml".into(),
            source: io,
        };
        assert_eq!(
            error_chain(&e),
            "cannot read config a.toml: No such file or directory"
        );
        let outer = Context { inner: e };
        assert_eq!(
            error_chain(&outer),
            "starting the node: cannot read config a.toml: No such file or directory"
        );
    }
}
