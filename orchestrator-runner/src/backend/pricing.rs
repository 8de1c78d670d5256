//! What a model's tokens cost, so that attempts run through a model API report their cost
//! as Claude Code's do.

use std::fmt;
use std::str::FromStr;

use orchestrator_core::model::Usage;

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// Anthropic's list prices by model family, US dollars per million tokens: input, output,
/// cache read, cache write (five-minute cache).
const ANTHROPIC_LIST_PRICES: &[(&str, [f64; 4])] = &[
    ("claude-opus-4-5", [5.0, 25.0, 0.5, 6.25]),
    ("claude-opus-4-1", [15.0, 75.0, 1.5, 18.75]),
    ("claude-opus-4-0", [15.0, 75.0, 1.5, 18.75]),
    ("claude-opus-4", [15.0, 75.0, 1.5, 18.75]),
    ("claude-sonnet-4-5", [3.0, 15.0, 0.3, 3.75]),
    ("claude-sonnet-4-0", [3.0, 15.0, 0.3, 3.75]),
    ("claude-sonnet-4", [3.0, 15.0, 0.3, 3.75]),
    ("claude-3-7-sonnet", [3.0, 15.0, 0.3, 3.75]),
    ("claude-3-5-sonnet", [3.0, 15.0, 0.3, 3.75]),
    ("claude-haiku-4-5", [1.0, 5.0, 0.1, 1.25]),
    ("claude-3-5-haiku", [0.8, 4.0, 0.08, 1.0]),
    ("claude-3-opus", [15.0, 75.0, 1.5, 18.75]),
    ("claude-3-haiku", [0.25, 1.25, 0.03, 0.3]),
];

impl Prices {
    /// Input and output prices, with cache reads at a tenth of input and cache writes a
    /// quarter above it (as most of Anthropic's models are priced).
    pub fn new(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cache_read: input * 0.1,
            cache_write: input * 1.25,
        }
    }

    /// The list price of an Anthropic model (`claude-sonnet-4-5`, also with a date or
    /// `-latest` after it); `None` for a model not in the table.
    pub fn anthropic(model: &str) -> Option<Self> {
        let family = model
            .strip_suffix("-latest")
            .or_else(|| {
                let (family, date) = model.rsplit_once('-')?;
                (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())).then_some(family)
            })
            .unwrap_or(model);
        ANTHROPIC_LIST_PRICES
            .iter()
            .find(|(name, _)| *name == family)
            .map(|&(_, [input, output, cache_read, cache_write])| Self {
                input,
                output,
                cache_read,
                cache_write,
            })
    }

    /// The cost in US dollars of `usage`'s tokens.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let per_token = |count: u64, price: f64| count as f64 * price / 1_000_000.0;
        per_token(usage.input_tokens, self.input)
            + per_token(usage.output_tokens, self.output)
            + per_token(usage.cache_read_tokens, self.cache_read)
            + per_token(usage.cache_write_tokens, self.cache_write)
    }
}

/// Why a `--prices` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricesError(String);

impl fmt::Display for PricesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: give US dollars per million tokens as INPUT,OUTPUT[,CACHE_READ,CACHE_WRITE], e.g. 3,15",
            self.0
        )
    }
}

impl std::error::Error for PricesError {}

impl FromStr for Prices {
    type Err = PricesError;

    /// `INPUT,OUTPUT[,CACHE_READ,CACHE_WRITE]` in US dollars per million tokens.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let numbers = text
            .split(',')
            .map(|part| {
                let part = part.trim();
                match part.parse::<f64>() {
                    Ok(price) if price.is_finite() && price >= 0.0 => Ok(price),
                    _ => Err(PricesError(format!(
                        "`{part}` is not a price (a number, 0 or more)"
                    ))),
                }
            })
            .collect::<Result<Vec<f64>, _>>()?;
        match numbers[..] {
            [input, output] => Ok(Self::new(input, output)),
            [input, output, cache_read, cache_write] => Ok(Self {
                input,
                output,
                cache_read,
                cache_write,
            }),
            _ => Err(PricesError(format!(
                "`{text}` has {} prices, not 2 or 4",
                numbers.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_are_priced_with_or_without_a_date() {
        let sonnet = Prices::anthropic("claude-sonnet-4-5").unwrap();
        assert_eq!(
            Prices::anthropic("claude-sonnet-4-5-20250929"),
            Some(sonnet)
        );
        assert_eq!(Prices::anthropic("claude-3-7-sonnet-latest"), Some(sonnet));
        assert_eq!(sonnet.input, 3.0);
        assert!((sonnet.cache_read - 0.3).abs() < 1e-12);
        assert!((sonnet.cache_write - 3.75).abs() < 1e-12);
        assert_eq!(
            Prices::anthropic("claude-opus-4-20250514").unwrap().output,
            75.0
        );
        assert_eq!(Prices::anthropic("claude-opus-4-5").unwrap().output, 25.0);
        let haiku = Prices::anthropic("claude-3-haiku-20240307").unwrap();
        assert_eq!((haiku.cache_read, haiku.cache_write), (0.03, 0.3));
        assert_eq!(Prices::anthropic("scripted-model"), None);
        assert_eq!(Prices::anthropic("claude-sonnet-4-5-2025"), None);
    }

    #[test]
    fn the_cost_adds_every_kind_of_token() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 2_000_000,
            cache_write_tokens: 400_000,
            cost_usd: 0.0,
        };
        let cost = Prices::new(3.0, 15.0).cost(&usage);
        assert!((cost - (3.0 + 1.5 + 0.6 + 1.5)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn prices_parse_from_two_or_four_numbers() {
        assert_eq!("3,15".parse::<Prices>().unwrap(), Prices::new(3.0, 15.0));
        assert_eq!(
            " 1 , 2 , 0.5 , 0 ".parse::<Prices>().unwrap(),
            Prices {
                input: 1.0,
                output: 2.0,
                cache_read: 0.5,
                cache_write: 0.0
            }
        );
        for bad in ["", "3", "3,15,1", "3,x", "-1,2", "NaN,1", "inf,1"] {
            let err = bad.parse::<Prices>().unwrap_err().to_string();
            assert!(err.contains("INPUT,OUTPUT"), "{bad}: {err}");
        }
    }
}
