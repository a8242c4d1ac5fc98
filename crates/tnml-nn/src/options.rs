//! The textual forms of the training options, parsed once (`FromStr`, so the command line's
//! value parsers and the experiment files share them) with messages that say what is accepted:
//!
//! | option | forms |
//! |---|---|
//! | [`NormKind`] | `none`, `layer` (`layernorm`), `batch` (`batchnorm`) |
//! | [`WeightInit`] | `he` (`kaiming`), `glorot` (`xavier`), `lecun`, or a positive standard deviation |
//! | [`LrSchedule`] | `none`, `exp:GAMMA` (per epoch), `step:EVERY:GAMMA`; GAMMA in (0, 1] |
//! | [`MpoLayers`] | `gao` (Gao et al.'s shapes), or `;`-separated [`MpoSpec`]s, one per replaceable layer |

use std::fmt;
use std::str::FromStr;

/// Text that is not one of an option's forms: the text, and what is accepted (with the
/// numbers). Front ends add their own name for the option (`--norm`, `norm = ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The text given.
    pub text: String,
    /// Why it is refused, or the forms accepted.
    pub reason: String,
}

impl ParseError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            text: text.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for ParseError {}

use crate::error::Result;
use crate::init::WeightInit;
use crate::models::{Arch, NormKind};
use crate::spec::MpoSpec;
use crate::train::LrSchedule;

impl FromStr for NormKind {
    type Err = ParseError;
    fn from_str(text: &str) -> std::result::Result<Self, ParseError> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "layer" | "layernorm" => Ok(Self::Layer),
            "batch" | "batchnorm" => Ok(Self::Batch),
            _ => Err(ParseError::new(text, "use none, layer or batch")),
        }
    }
}

impl fmt::Display for NormKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Layer => "layer",
            Self::Batch => "batch",
        })
    }
}

impl fmt::Display for WeightInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Glorot => f.write_str("glorot"),
            Self::He => f.write_str("he"),
            Self::LeCun => f.write_str("lecun"),
            Self::Std(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for WeightInit {
    type Err = ParseError;
    fn from_str(text: &str) -> std::result::Result<Self, ParseError> {
        match text.to_ascii_lowercase().as_str() {
            "glorot" | "xavier" => Ok(Self::Glorot),
            "he" | "kaiming" => Ok(Self::He),
            "lecun" => Ok(Self::LeCun),
            t => t
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Self::Std)
                .ok_or_else(|| {
                    ParseError::new(text, "use he, glorot, lecun or a positive standard deviation")
                }),
        }
    }
}

impl FromStr for LrSchedule {
    type Err = ParseError;
    fn from_str(text: &str) -> std::result::Result<Self, ParseError> {
        let gamma = |s: &str| match s.parse::<f64>() {
            Ok(g) if g > 0.0 && g <= 1.0 => Ok(g),
            Ok(g) => Err(ParseError::new(
                text,
                format!("the factor {g} must lie in (0, 1]"),
            )),
            Err(_) => Err(ParseError::new(text, format!("{s:?} is not a number"))),
        };
        let parts: Vec<&str> = text.split(':').collect();
        Ok(match parts.as_slice() {
            ["none"] => Self::Constant,
            ["exp", g] => Self::Exponential { gamma: gamma(g)? },
            ["step", every, g] => Self::Step {
                every: every.parse().ok().filter(|&e: &usize| e > 0).ok_or_else(|| {
                    ParseError::new(
                        text,
                        format!("the step length {every:?} must be a whole number >= 1"),
                    )
                })?,
                gamma: gamma(g)?,
            },
            _ => {
                return Err(ParseError::new(
                    text,
                    "expected none, exp:GAMMA or step:EVERY:GAMMA",
                ))
            }
        })
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Constant => write!(f, "none"),
            Self::Exponential { gamma } => write!(f, "exp:{gamma}"),
            Self::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
        }
    }
}

/// Which layers become MPOs: Gao et al.'s preset shapes for the architecture, or explicit specs.
#[derive(Debug, Clone, PartialEq)]
pub enum MpoLayers {
    /// [`Arch::gao_preset`], with the bond dimension given separately.
    Gao,
    /// One spec per replaceable layer.
    Specs(Vec<MpoSpec>),
}

impl MpoLayers {
    /// The specs for `arch`; `bond` applies to [`MpoLayers::Gao`] only.
    ///
    /// # Errors
    /// A bond given with explicit specs, or a preset that cannot take it.
    pub fn resolve(&self, arch: Arch, bond: Option<usize>) -> Result<Vec<MpoSpec>> {
        match self {
            Self::Gao => arch.gao_preset(bond),
            Self::Specs(_) if bond.is_some() => Err(crate::NnError::Invalid {
                field: "bond",
                reason: "it applies to the gao preset; put the bond dimensions into the specs".into(),
            }),
            Self::Specs(specs) => Ok(specs.clone()),
        }
    }
}

impl FromStr for MpoLayers {
    type Err = ParseError;
    fn from_str(text: &str) -> std::result::Result<Self, ParseError> {
        if text.trim().eq_ignore_ascii_case("gao") {
            return Ok(Self::Gao);
        }
        text.split(';')
            .map(MpoSpec::parse)
            .collect::<Result<Vec<_>>>()
            .map(Self::Specs)
            .map_err(|e| ParseError::new(text, e.to_string()))
    }
}

impl fmt::Display for MpoLayers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gao => write!(f, "gao"),
            Self::Specs(specs) => {
                let parts: Vec<String> = specs.iter().map(ToString::to_string).collect();
                write!(f, "{}", parts.join(";"))
            }
        }
    }
}

impl serde::Serialize for MpoLayers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_bad_ones_say_what_is_accepted() {
        assert_eq!("layer".parse::<NormKind>(), Ok(NormKind::Layer));
        assert_eq!("BatchNorm".parse::<NormKind>(), Ok(NormKind::Batch));
        assert_eq!(
            "x".parse::<NormKind>().unwrap_err().to_string(),
            "\"x\": use none, layer or batch"
        );
        assert_eq!("0.01".parse::<WeightInit>(), Ok(WeightInit::Std(0.01)));
        assert!("-1"
            .parse::<WeightInit>()
            .unwrap_err()
            .to_string()
            .contains("positive standard deviation"));
        assert_eq!(
            "exp:0.9".parse::<LrSchedule>(),
            Ok(LrSchedule::Exponential { gamma: 0.9 })
        );
        assert_eq!(
            "step:50:0.316".parse::<LrSchedule>(),
            Ok(LrSchedule::Step {
                every: 50,
                gamma: 0.316
            })
        );
        assert!("exp:-1"
            .parse::<LrSchedule>()
            .unwrap_err()
            .to_string()
            .contains("must lie in (0, 1]"));
        assert!("step:0:0.5"
            .parse::<LrSchedule>()
            .unwrap_err()
            .to_string()
            .contains("whole number >= 1"));
        assert!("cos"
            .parse::<LrSchedule>()
            .unwrap_err()
            .to_string()
            .contains("expected none"));
        for s in ["none", "exp:0.93", "step:50:0.316"] {
            assert_eq!(s.parse::<LrSchedule>().unwrap().to_string(), s);
        }
        for s in ["none", "layer", "batch"] {
            assert_eq!(s.parse::<NormKind>().unwrap().to_string(), s);
        }
        for s in ["he", "glorot", "lecun", "0.044"] {
            assert_eq!(s.parse::<WeightInit>().unwrap().to_string(), s);
        }
        assert_eq!("gao".parse::<MpoLayers>(), Ok(MpoLayers::Gao));
        let m: MpoLayers = "M^{4,4,4,4}_{4,7,7,4}(16);4,4,4,4->1,1,10,1:4".parse().unwrap();
        let MpoLayers::Specs(specs) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(specs.len(), 2);
        assert!(m.resolve(Arch::Fc2, Some(4)).is_err());
        assert_eq!(
            MpoLayers::Gao.resolve(Arch::Fc2, Some(8)).unwrap()[0].bond_dims,
            vec![8, 8, 8]
        );
        assert!("4,4->4".parse::<MpoLayers>().is_err());
    }
}
