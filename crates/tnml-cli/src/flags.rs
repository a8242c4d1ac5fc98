//! Library errors name settings as the libraries do (`NnError::Invalid { field: "batch_size" }`);
//! the command line names its flags. This maps one to the other, in one place, when an error is
//! printed.

/// The flag of a library setting: `batch_size` is `--batch-size`; a model given to compress is
/// `--checkpoint`.
pub fn flag(field: &str) -> String {
    match field {
        "model" => "--checkpoint".to_string(),
        f => format!("--{}", f.replace('_', "-")),
    }
}

/// `err` as printed (`{:#}`, every context), with each library setting named by its flag.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = format!("{err:#}");
    for cause in err.chain() {
        if let Some(tnml_nn::NnError::Invalid { field, reason }) = cause.downcast_ref() {
            let library = format!("{field}: {reason}");
            text = text.replacen(&library, &format!("{}: {reason}", flag(field)), 1);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_fields_are_printed_as_flags() {
        let err = anyhow::Error::from(tnml_nn::NnError::Invalid {
            field: "batch_size",
            reason: "0: it must be at least 1".into(),
        })
        .context("net train");
        assert_eq!(
            describe(&err),
            "net train: --batch-size: 0: it must be at least 1"
        );
        assert_eq!(flag("lr"), "--lr");
        assert_eq!(flag("model"), "--checkpoint");
    }
}
