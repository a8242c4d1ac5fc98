//! Library errors name settings as the libraries do (`NnError::Invalid { field: "batch_size" }`,
//! `DataError::ImageSize { size }`); the command line names its flags and its commands. This maps
//! one to the other, in one place, when an error is printed.

use tnml_data::DataError;

/// The flag of a library setting: `batch_size` is `--batch-size`; a model given to compress is
/// `--checkpoint`.
pub fn flag(field: &str) -> String {
    match field {
        "model" => "--checkpoint".to_string(),
        "learning_rate" => "--lr".to_string(),
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
        let mps = match cause.downcast_ref() {
            Some(tnml_mps::MpsError::InvalidOption { option, value, .. }) => Some((*option, value.clone())),
            Some(tnml_mps::MpsError::SiteOutOfChain { option, site, .. }) => {
                Some((*option, site.to_string()))
            }
            _ => None,
        };
        // settings named as fields (`max_bond`), not prose (`the bond schedule`)
        if let Some((option, value)) =
            mps.filter(|(o, _)| o.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        {
            let library = format!("{option} is {value}");
            text = text.replacen(&library, &format!("{} is {value}", flag(option)), 1);
        }
        let data = match cause.downcast_ref::<tnml_nn::NnError>() {
            Some(tnml_nn::NnError::Dataset(data)) => Some(data),
            _ => cause.downcast_ref::<DataError>(),
        };
        if let Some(data) = data {
            text = describe_data(data, text);
        }
    }
    text
}

/// A data error as the command line says it: `--image-size`, and how to get missing files.
fn describe_data(err: &DataError, text: String) -> String {
    match err {
        DataError::ImageSize { size, height, width } => text.replacen(
            &err.to_string(),
            &format!(
                "--image-size {size} does not fit {height}x{width} images: use {height} or {}",
                height / 2
            ),
            1,
        ),
        DataError::NotFound { cli_name, .. } => format!(
            "{text}. Run `tnml data fetch --dataset {cli_name}` (needs network), or put the files \
             there by hand, or point --data-dir / TNML_DATA_DIR at a folder that has them"
        ),
        DataError::NotAFile { .. } => {
            format!("{text} (`tnml data fetch` downloads it)")
        }
        _ => text,
    }
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

    #[test]
    fn mps_settings_are_printed_as_flags() {
        let err = tnml_mps::SweepSettings {
            final_refit_lambda: Some(0.5),
            ..tnml_mps::SweepSettings::default()
        }
        .config()
        .unwrap_err();
        assert_eq!(
            describe(&err.into()),
            "--final-refit-lambda is 0.5: it is the penalty of the final refit, which is not asked for"
        );
        let lr = tnml_mps::GradientConfig {
            learning_rate: -1.0,
            ..tnml_mps::GradientConfig::default()
        };
        let text = describe(&lr.validate().unwrap_err().into());
        assert!(text.starts_with("--lr is -1: "), "{text}");
    }

    #[test]
    fn data_errors_name_the_flag_and_the_fetch_command() {
        let size = anyhow::Error::from(DataError::ImageSize {
            size: 20,
            height: 28,
            width: 28,
        })
        .context("mps train");
        assert_eq!(
            describe(&size),
            "mps train: --image-size 20 does not fit 28x28 images: use 28 or 14"
        );
        let missing = anyhow::Error::from(DataError::NotFound {
            dataset: "Fashion-MNIST",
            cli_name: "fashion-mnist",
            dir: "/nowhere".into(),
            missing: vec!["t10k-labels-idx1-ubyte.gz".into()],
        });
        let text = describe(&missing);
        // the same through the networks' error type (transparent: no DataError in the chain)
        let through_nn = anyhow::Error::from(tnml_nn::NnError::Dataset(DataError::NotFound {
            dataset: "MNIST",
            cli_name: "mnist",
            dir: "/nowhere".into(),
            missing: vec!["t10k-labels-idx1-ubyte.gz".into()],
        }));
        assert!(
            describe(&through_nn).contains("Run `tnml data fetch --dataset mnist`"),
            "{}",
            describe(&through_nn)
        );
        assert!(
            text.starts_with("Fashion-MNIST not found in /nowhere: missing t10k-labels-idx1-ubyte.gz. Run `tnml data fetch --dataset fashion-mnist`"),
            "{text}"
        );
    }
}
