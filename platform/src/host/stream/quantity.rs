//! Kubernetes resource quantities (`123456789n`, `250m`, `2`, `412345Ki`, `1Gi`, `1e3`, `500M`),
//! parsed exactly as the API server's grammar defines them and turned into plain numbers: CPU in
//! millicores, memory and storage in bytes, counts as they are. Owns parsing only; what a number
//! means is up to the caller.
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <signedNumber>    ::= [+-] <digits> | [+-] <digits>.<digits> | [+-] <digits>. | [+-] .<digits>
//! <suffix>          ::= <binarySI> | <decimalSI> | <decimalExponent>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= e <signedInteger> | E <signedInteger>
//! ```

use std::fmt;
use std::str::FromStr;

/// Why a quantity string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("invalid number in quantity {0:?}")]
    Number(String),
    #[error("unknown suffix in quantity {0:?}")]
    Suffix(String),
    #[error("quantity {0:?} is out of range")]
    Range(String),
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`, kept exact until converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

/// More significant digits than an `i128` holds exactly are dropped (and the exponent adjusted):
/// quantities never need that precision.
const MAX_DIGITS: usize = 36;

/// Exponents beyond this are rejected rather than turned into infinities.
const MAX_EXP10: i32 = 400;

impl Quantity {
    /// Parses a quantity string; no surrounding whitespace is allowed, as in Kubernetes.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i128 = 0;
        let mut exp10: i32 = 0;
        let mut digits = 0usize;
        let mut significant = 0usize;
        let mut seen_point = false;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'0'..=b'9' => {
                    digits += 1;
                    if significant < MAX_DIGITS {
                        if mantissa != 0 || c != b'0' {
                            significant += 1;
                        }
                        mantissa = mantissa * 10 + i128::from(c - b'0');
                        if seen_point {
                            exp10 -= 1;
                        }
                    } else if !seen_point {
                        // A dropped integer digit still scales the value.
                        exp10 += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            i += 1;
        }
        if digits == 0 {
            return Err(QuantityError::Number(text.to_owned()));
        }
        let suffix = &text[i..];
        let (suffix_exp10, exp2) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            other => match other.strip_prefix(['e', 'E']) {
                Some(exponent) => (parse_exponent(exponent, text)?, 0),
                None => return Err(QuantityError::Suffix(text.to_owned())),
            },
        };
        let exp10 = exp10 + suffix_exp10;
        if !(-MAX_EXP10..=MAX_EXP10).contains(&exp10) {
            return Err(QuantityError::Range(text.to_owned()));
        }
        let mantissa = if negative { -mantissa } else { mantissa };
        Ok(Self { mantissa, exp10, exp2 })
    }

    /// The value in base units (cores, bytes, items).
    pub fn value(&self) -> f64 {
        self.scaled(0)
    }

    /// The value in thousandths of the base unit: millicores for CPU.
    pub fn millis(&self) -> f64 {
        self.scaled(3)
    }

    /// The value rounded to a whole non-negative number of base units (bytes for memory).
    pub fn whole(&self) -> u64 {
        let v = self.value().round();
        if v <= 0.0 {
            0
        } else if v >= u64::MAX as f64 {
            u64::MAX
        } else {
            v as u64
        }
    }

    /// `value × 10^shift`, dividing by an exact power of ten when the exponent is negative so
    /// `123456789n` is 0.123456789 and not 0.12345678900000001.
    fn scaled(&self, shift: i32) -> f64 {
        let exp = self.exp10 + shift;
        let m = self.mantissa as f64;
        let v = if exp >= 0 { m * 10f64.powi(exp) } else { m / 10f64.powi(-exp) };
        v * 2f64.powi(self.exp2 as i32)
    }
}

fn parse_exponent(exponent: &str, whole: &str) -> Result<i32, QuantityError> {
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Suffix(whole.to_owned()));
    }
    let value: i32 = exponent.parse().map_err(|_| QuantityError::Range(whole.to_owned()))?;
    if !(-MAX_EXP10..=MAX_EXP10).contains(&value) {
        return Err(QuantityError::Range(whole.to_owned()));
    }
    Ok(value)
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

/// CPU quantity in millicores.
pub fn cpu_millicores(text: &str) -> Result<f64, QuantityError> {
    Ok(Quantity::parse(text)?.millis())
}

/// Memory or storage quantity in bytes.
pub fn bytes(text: &str) -> Result<u64, QuantityError> {
    Ok(Quantity::parse(text)?.whole())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn cpu_in_nanocores_millicores_and_cores() {
        assert!(close(cpu_millicores("123456789n").unwrap(), 123.456789));
        assert!(close(cpu_millicores("250m").unwrap(), 250.0));
        assert!(close(cpu_millicores("2").unwrap(), 2000.0));
        assert!(close(cpu_millicores("0.5").unwrap(), 500.0));
        assert!(close(cpu_millicores("1500u").unwrap(), 1.5));
        assert!(close(cpu_millicores(".25").unwrap(), 250.0));
        assert!(close(cpu_millicores("3.").unwrap(), 3000.0));
    }

    #[test]
    fn memory_in_binary_and_decimal_units() {
        assert_eq!(bytes("412345Ki").unwrap(), 412_345 * 1024);
        assert_eq!(bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(bytes("2Ti").unwrap(), 2 << 40);
        assert_eq!(bytes("1e3").unwrap(), 1000);
        assert_eq!(bytes("1E3").unwrap(), 1000);
        assert_eq!(bytes("5e-1").unwrap(), 1);
        assert_eq!(bytes("500M").unwrap(), 500_000_000);
        assert_eq!(bytes("1k").unwrap(), 1000);
        assert_eq!(bytes("3G").unwrap(), 3_000_000_000);
        assert_eq!(bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(bytes("0.5Ki").unwrap(), 512);
        assert_eq!(bytes("12345").unwrap(), 12345);
        assert_eq!(bytes("+7").unwrap(), 7);
    }

    #[test]
    fn a_lone_e_is_exa_and_not_an_exponent() {
        assert_eq!(bytes("1E").unwrap(), 1_000_000_000_000_000_000);
        assert_eq!(bytes("1Ei").unwrap(), 1 << 60);
    }

    #[test]
    fn negative_values_are_kept_but_clamped_to_zero_as_whole_numbers() {
        assert!(close(Quantity::parse("-250m").unwrap().millis(), -250.0));
        assert_eq!(bytes("-1Ki").unwrap(), 0);
    }

    #[test]
    fn very_long_numbers_keep_their_magnitude() {
        let q = Quantity::parse(&format!("1{}", "0".repeat(45))).unwrap();
        assert!(close(q.value(), 1e45));
        let q = Quantity::parse(&format!("0.{}1", "0".repeat(40))).unwrap();
        assert!(close(q.value() * 1e41, 1.0));
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::Empty));
        for bad in ["m", "Ki", "-", ".", "1.2.3", "1 Gi", " 1", "1Kb", "1ki", "1e", "1e+", "1e1.5"]
        {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(matches!(Quantity::parse("1e999"), Err(QuantityError::Range(_))));
        assert!(matches!(Quantity::parse("1x"), Err(QuantityError::Suffix(_))));
    }

    #[test]
    fn parses_through_from_str() {
        let q: Quantity = "2Gi".parse().unwrap();
        assert_eq!(q.whole(), 2 << 30);
    }
}
