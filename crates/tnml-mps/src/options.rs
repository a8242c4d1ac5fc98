//! The names of the MPS trainers' choices, parsed (`FromStr`) and printed (`Display`) in one
//! place for the CLI (`--trainer`, `--loss`, `--lr-schedule`, `--feature-map`) and Python
//! (`trainer=`, `loss=`, `lr_schedule=`, `feature_map=`):
//!
//! | choice | names |
//! |---|---|
//! | [`Trainer`] | `sweep`, `gradient` |
//! | [`Loss`] | `cross-entropy` (also `cross_entropy`), `squared` |
//! | [`LrSchedule`] | `constant`, `cosine` |
//! | [`FeatureMap`] | `trig`, `linear`, `trigN` (`N` = 2..16; `trig3` ...) |
//! | [`RefitKind`] | `ridge`, `softmax` |

use std::fmt;
use std::str::FromStr;

use crate::error::MpsError;
use crate::feature::FeatureMap;
use crate::gradient::LrSchedule;
use crate::model::Loss;
use crate::projection::RefitKind;

/// Which trainer fits the MPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trainer {
    /// DMRG-like two-site sweeps with the label moving (Stoudenmire & Schwab).
    #[default]
    Sweep,
    /// Adam on minibatches, all cores at once, exact gradients.
    Gradient,
}

fn unknown(what: &'static str, given: &str, expected: &'static str) -> MpsError {
    MpsError::UnknownChoice {
        what,
        given: given.to_string(),
        expected,
    }
}

impl Trainer {
    /// The names, for a command line's list of values.
    pub const NAMES: [&'static str; 2] = ["sweep", "gradient"];
}

impl FromStr for Trainer {
    type Err = MpsError;
    fn from_str(s: &str) -> Result<Self, MpsError> {
        match s {
            "sweep" => Ok(Self::Sweep),
            "gradient" => Ok(Self::Gradient),
            _ => Err(unknown("trainer", s, "\"sweep\" or \"gradient\"")),
        }
    }
}

impl fmt::Display for Trainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sweep => "sweep",
            Self::Gradient => "gradient",
        })
    }
}

impl Loss {
    /// The names, for a command line's list of values.
    pub const NAMES: [&'static str; 2] = ["cross-entropy", "squared"];
}

impl FromStr for Loss {
    type Err = MpsError;
    fn from_str(s: &str) -> Result<Self, MpsError> {
        match s {
            "cross-entropy" | "cross_entropy" => Ok(Self::CrossEntropy),
            "squared" => Ok(Self::Squared),
            _ => Err(unknown("loss", s, "\"cross-entropy\" or \"squared\"")),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CrossEntropy => "cross-entropy",
            Self::Squared => "squared",
        })
    }
}

impl LrSchedule {
    /// The names, for a command line's list of values.
    pub const NAMES: [&'static str; 2] = ["constant", "cosine"];
}

impl FromStr for LrSchedule {
    type Err = MpsError;
    fn from_str(s: &str) -> Result<Self, MpsError> {
        match s {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            _ => Err(unknown("lr_schedule", s, "\"constant\" or \"cosine\"")),
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Constant => "constant",
            Self::Cosine => "cosine",
        })
    }
}

impl RefitKind {
    /// The names, for a command line's list of values.
    pub const NAMES: [&'static str; 2] = ["ridge", "softmax"];
}

impl FromStr for RefitKind {
    type Err = MpsError;
    fn from_str(s: &str) -> Result<Self, MpsError> {
        match s {
            "ridge" => Ok(Self::Ridge),
            "softmax" => Ok(Self::Softmax),
            _ => Err(unknown("refit", s, "\"ridge\" or \"softmax\"")),
        }
    }
}

impl fmt::Display for RefitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ridge => "ridge",
            Self::Softmax => "softmax",
        })
    }
}

impl FeatureMap {
    /// The names a command line lists (any `trigN`, N = 2..16, is accepted too).
    pub const NAMES: [&'static str; 3] = ["trig", "trig3", "linear"];
}

impl FromStr for FeatureMap {
    type Err = MpsError;
    /// `trig`, `linear` or `trigN`, checked ([`FeatureMap::validate`]).
    fn from_str(s: &str) -> Result<Self, MpsError> {
        let map = match s {
            "trig" => Self::Trig,
            "linear" => Self::Linear,
            _ => match s.strip_prefix("trig").and_then(|d| d.parse::<usize>().ok()) {
                Some(d) => Self::TrigD(d),
                None => {
                    return Err(unknown(
                        "feature_map",
                        s,
                        "\"trig\", \"linear\" or \"trigN\" (N = 2..16)",
                    ))
                }
            },
        };
        map.validate()?;
        Ok(map)
    }
}

impl fmt::Display for FeatureMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trig => f.write_str("trig"),
            Self::TrigD(d) => write!(f, "trig{d}"),
            Self::Linear => f.write_str("linear"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_prints_back() {
        for n in Trainer::NAMES {
            assert_eq!(n.parse::<Trainer>().unwrap().to_string(), n);
        }
        for n in Loss::NAMES {
            assert_eq!(n.parse::<Loss>().unwrap().to_string(), n);
        }
        for n in LrSchedule::NAMES {
            assert_eq!(n.parse::<LrSchedule>().unwrap().to_string(), n);
        }
        for n in RefitKind::NAMES {
            assert_eq!(n.parse::<RefitKind>().unwrap().to_string(), n);
        }
        for n in FeatureMap::NAMES.into_iter().chain(["trig7"]) {
            assert_eq!(n.parse::<FeatureMap>().unwrap().to_string(), n);
        }
        assert_eq!("cross_entropy".parse::<Loss>().unwrap(), Loss::CrossEntropy);
        assert_eq!("trig3".parse::<FeatureMap>().unwrap(), FeatureMap::TrigD(3));
    }

    #[test]
    fn unknown_names_say_what_is_accepted() {
        let e = "hinge".parse::<Loss>().unwrap_err().to_string();
        assert_eq!(e, "loss \"hinge\": use \"cross-entropy\" or \"squared\"");
        let e = "adagrad".parse::<Trainer>().unwrap_err().to_string();
        assert_eq!(e, "trainer \"adagrad\": use \"sweep\" or \"gradient\"");
        let e = "lasso".parse::<RefitKind>().unwrap_err().to_string();
        assert_eq!(e, "refit \"lasso\": use \"ridge\" or \"softmax\"");
        assert!("trig1".parse::<FeatureMap>().is_err());
        assert!("trig99".parse::<FeatureMap>().is_err());
        assert!("linear2"
            .parse::<FeatureMap>()
            .unwrap_err()
            .to_string()
            .contains("trigN"));
    }
}
