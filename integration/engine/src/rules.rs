//! The reference rules (SYSTEM.md §7), exact so that clients and tests can
//! rely on them. Pure data and functions: no I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Most orders a race may queue for one turn.
pub const MAX_ORDERS: usize = 16;
/// Industry every race starts with at turn 0.
pub const START_INDUSTRY: u32 = 10;

/// `GALAXY_START_CONFIG`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartConfig {
    pub game_id: Uuid,
    pub players: Vec<Player>,
    #[serde(default = "empty_object")]
    pub settings: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Player {
    pub account_id: Uuid,
    pub race_name: String,
}

impl StartConfig {
    /// Parses and checks a start config; the error is the reason printed
    /// before exiting with code 78.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let config: StartConfig =
            serde_json::from_str(raw).map_err(|e| format!("GALAXY_START_CONFIG: {e}"))?;
        if config.players.is_empty() {
            return Err("GALAXY_START_CONFIG: players must not be empty".into());
        }
        if !config.settings.is_object() {
            return Err("GALAXY_START_CONFIG: settings must be a JSON object".into());
        }
        let mut seen = std::collections::HashSet::new();
        for p in &config.players {
            let name = p.race_name.trim();
            if name.is_empty() || name.chars().count() > 64 || name != p.race_name {
                return Err(format!(
                    "GALAXY_START_CONFIG: race name {:?} must be 1-64 characters without surrounding spaces",
                    p.race_name
                ));
            }
            if p.race_name.contains('/') || p.race_name.chars().any(char::is_control) {
                return Err(format!(
                    "GALAXY_START_CONFIG: race name {:?} contains a forbidden character",
                    p.race_name
                ));
            }
            if !seen.insert(p.race_name.to_lowercase()) {
                return Err(format!(
                    "GALAXY_START_CONFIG: race name {:?} is used twice",
                    p.race_name
                ));
            }
        }
        let mut accounts = std::collections::HashSet::new();
        if !config.players.iter().all(|p| accounts.insert(p.account_id)) {
            return Err("GALAXY_START_CONFIG: an account plays two races".into());
        }
        Ok(config)
    }
}

/// One validated order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Order {
    BuildShips { count: u32 },
    RaiseIndustry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaceState {
    pub industry: u32,
    pub ships: u32,
}

/// The whole game, as persisted under `/data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Game {
    pub config: StartConfig,
    /// `history[t]` is every race's state after turn `t`; turn 0 is the start.
    pub history: Vec<BTreeMap<String, RaceState>>,
    /// Orders queued for the coming turn, by race.
    pub orders: BTreeMap<String, Vec<Order>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// 400: the orders break a rule; nothing was stored.
    Invalid(String),
    /// 404: unknown race or a turn that does not exist yet.
    NotFound(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub turn: u32,
    pub race: String,
    pub industry: u32,
    pub ships: u32,
}

impl Game {
    /// Turn 0: every race has `industry: 10, ships: 0`.
    pub fn new(config: StartConfig) -> Self {
        let start = config
            .players
            .iter()
            .map(|p| {
                (
                    p.race_name.clone(),
                    RaceState {
                        industry: START_INDUSTRY,
                        ships: 0,
                    },
                )
            })
            .collect();
        Self {
            config,
            history: vec![start],
            orders: BTreeMap::new(),
        }
    }

    pub fn turn(&self) -> u32 {
        u32::try_from(self.history.len() - 1).expect("fewer than 2^32 turns")
    }

    fn latest(&self) -> &BTreeMap<String, RaceState> {
        self.history.last().expect("turn 0 always exists")
    }

    /// The race's canonical name; race names match case-insensitively
    /// because they are unique case-insensitively.
    pub fn race(&self, name: &str) -> Result<&str, RuleError> {
        self.config
            .players
            .iter()
            .map(|p| p.race_name.as_str())
            .find(|r| r.to_lowercase() == name.to_lowercase())
            .ok_or_else(|| RuleError::NotFound(format!("unknown race {name:?}")))
    }

    /// Validates a whole order list for `race` against its current state;
    /// on success it replaces the race's orders for the coming turn.
    pub fn submit(&mut self, race: &str, raw: &Value) -> Result<usize, RuleError> {
        let race = self.race(race)?.to_owned();
        let orders = parse_orders(raw, self.latest()[&race].industry)?;
        let count = orders.len();
        self.orders.insert(race, orders);
        Ok(count)
    }

    /// Applies every race's orders, clears them and returns the new turn.
    pub fn next_turn(&mut self) -> u32 {
        let mut next = self.latest().clone();
        for (race, orders) in std::mem::take(&mut self.orders) {
            let Some(state) = next.get_mut(&race) else {
                continue;
            };
            for order in orders {
                match order {
                    Order::BuildShips { count } => state.ships = state.ships.saturating_add(count),
                    Order::RaiseIndustry => state.industry = state.industry.saturating_add(1),
                }
            }
        }
        self.history.push(next);
        self.turn()
    }

    /// `turn` defaults to the latest.
    pub fn report(&self, race: &str, turn: Option<u32>) -> Result<Report, RuleError> {
        let race = self.race(race)?;
        let turn = turn.unwrap_or(self.turn());
        let states = self
            .history
            .get(turn as usize)
            .ok_or_else(|| RuleError::NotFound(format!("turn {turn} has not been generated")))?;
        let state = states[race];
        Ok(Report {
            turn,
            race: race.to_owned(),
            industry: state.industry,
            ships: state.ships,
        })
    }
}

/// Checks an order list; every reason names the offending order.
fn parse_orders(raw: &Value, industry: u32) -> Result<Vec<Order>, RuleError> {
    let invalid = |m: String| Err(RuleError::Invalid(m));
    let Some(items) = raw.as_array() else {
        return invalid("orders must be a JSON array".into());
    };
    if items.len() > MAX_ORDERS {
        return invalid(format!(
            "at most {MAX_ORDERS} orders per turn, got {}",
            items.len()
        ));
    }
    let mut orders = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return invalid(format!("order {i}: must be a JSON object"));
        };
        let kind = obj.get("type").and_then(Value::as_str);
        let order = match kind {
            Some("build_ships") => {
                if let Some(extra) = obj.keys().find(|k| *k != "type" && *k != "count") {
                    return invalid(format!("order {i}: unknown field {extra:?}"));
                }
                let count = obj.get("count").and_then(Value::as_u64);
                match count {
                    Some(n) if n >= 1 && n <= u64::from(industry) => Order::BuildShips {
                        count: u32::try_from(n).unwrap_or(industry),
                    },
                    _ => {
                        return invalid(format!(
                            "order {i}: build_ships count must be an integer between 1 and the race's industry ({industry})"
                        ));
                    }
                }
            }
            Some("raise_industry") => {
                if let Some(extra) = obj.keys().find(|k| *k != "type") {
                    return invalid(format!("order {i}: unknown field {extra:?}"));
                }
                Order::RaiseIndustry
            }
            Some(other) => return invalid(format!("order {i}: unknown order type {other:?}")),
            None => return invalid(format!("order {i}: \"type\" must be a string")),
        };
        orders.push(order);
    }
    Ok(orders)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn game() -> Game {
        Game::new(
            StartConfig::parse(
                &json!({
                    "game_id": Uuid::nil(),
                    "players": [
                        {"account_id": Uuid::from_u128(1), "race_name": "Zorg"},
                        {"account_id": Uuid::from_u128(2), "race_name": "Humans"},
                    ],
                    "settings": {}
                })
                .to_string(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn turn_zero_has_ten_industry_and_no_ships() {
        let g = game();
        assert_eq!(g.turn(), 0);
        let r = g.report("Zorg", None).unwrap();
        assert_eq!((r.turn, r.industry, r.ships), (0, 10, 0));
        assert_eq!(g.report("zorg", Some(0)).unwrap().race, "Zorg");
    }

    #[test]
    fn a_turn_applies_orders_and_clears_them() {
        let mut g = game();
        g.submit(
            "Zorg",
            &json!([{"type": "build_ships", "count": 10}, {"type": "raise_industry"}]),
        )
        .unwrap();
        g.submit(
            "Humans",
            &json!([{"type": "raise_industry"}, {"type": "raise_industry"}]),
        )
        .unwrap();
        assert_eq!(g.next_turn(), 1);
        let z = g.report("Zorg", None).unwrap();
        assert_eq!((z.turn, z.industry, z.ships), (1, 11, 10));
        let h = g.report("Humans", Some(1)).unwrap();
        assert_eq!((h.industry, h.ships), (12, 0));
        // Orders were cleared: the next turn changes nothing.
        assert_eq!(g.next_turn(), 2);
        assert_eq!(g.report("Zorg", None).unwrap().ships, 10);
        // History stays readable.
        assert_eq!(g.report("Zorg", Some(0)).unwrap().ships, 0);
    }

    #[test]
    fn resubmitting_replaces_the_previous_orders() {
        let mut g = game();
        g.submit("Zorg", &json!([{"type": "build_ships", "count": 5}]))
            .unwrap();
        g.submit("Zorg", &json!([{"type": "build_ships", "count": 2}]))
            .unwrap();
        g.next_turn();
        assert_eq!(g.report("Zorg", None).unwrap().ships, 2);
    }

    #[test]
    fn build_ships_is_bounded_by_industry() {
        let mut g = game();
        for bad in [
            json!(0),
            json!(11),
            json!(-1),
            json!(2.5),
            json!("3"),
            json!(null),
        ] {
            let err = g
                .submit("Zorg", &json!([{"type": "build_ships", "count": bad}]))
                .unwrap_err();
            assert!(
                matches!(err, RuleError::Invalid(ref m) if m.contains("between 1 and")),
                "{err:?}"
            );
        }
        assert!(
            g.submit("Zorg", &json!([{"type": "build_ships", "count": 10}]))
                .is_ok()
        );
        // After raising industry the bound grows.
        g.submit("Zorg", &json!([{"type": "raise_industry"}]))
            .unwrap();
        g.next_turn();
        assert!(
            g.submit("Zorg", &json!([{"type": "build_ships", "count": 11}]))
                .is_ok()
        );
    }

    #[test]
    fn invalid_lists_store_nothing() {
        let mut g = game();
        g.submit("Zorg", &json!([{"type": "raise_industry"}]))
            .unwrap();
        let seventeen: Vec<Value> = (0..17).map(|_| json!({"type": "raise_industry"})).collect();
        let cases = [
            (json!(seventeen), "at most 16"),
            (json!([{"type": "warp"}]), "unknown order type"),
            (
                json!([{"type": "raise_industry", "by": 2}]),
                "unknown field",
            ),
            (json!([{"count": 1}]), "\"type\""),
            (json!([1]), "JSON object"),
            (json!({"type": "raise_industry"}), "JSON array"),
            (
                json!([{"type": "raise_industry"}, {"type": "build_ships", "count": 99}]),
                "between 1 and",
            ),
        ];
        for (orders, reason) in cases {
            match g.submit("Zorg", &orders) {
                Err(RuleError::Invalid(m)) => assert!(m.contains(reason), "{m} lacks {reason}"),
                other => panic!("{orders} gave {other:?}"),
            }
        }
        // The earlier valid list is still the one that applies.
        g.next_turn();
        assert_eq!(g.report("Zorg", None).unwrap().industry, 11);
        let sixteen: Vec<Value> = (0..16).map(|_| json!({"type": "raise_industry"})).collect();
        assert_eq!(g.submit("Zorg", &json!(sixteen)).unwrap(), 16);
    }

    #[test]
    fn unknown_race_and_future_turn_are_not_found() {
        let mut g = game();
        assert!(matches!(
            g.report("Nobody", None),
            Err(RuleError::NotFound(_))
        ));
        assert!(matches!(
            g.report("Zorg", Some(1)),
            Err(RuleError::NotFound(_))
        ));
        assert!(matches!(
            g.submit("Nobody", &json!([])),
            Err(RuleError::NotFound(_))
        ));
    }

    #[test]
    fn start_config_is_checked() {
        let id = Uuid::nil();
        let bad = [
            "not json".to_owned(),
            json!({"game_id": id, "players": []}).to_string(),
            json!({"game_id": "x", "players": [{"account_id": id, "race_name": "A"}]}).to_string(),
            json!({"game_id": id, "players": [{"account_id": id, "race_name": ""}]}).to_string(),
            json!({"game_id": id, "players": [
                {"account_id": Uuid::from_u128(1), "race_name": "A"},
                {"account_id": Uuid::from_u128(2), "race_name": "a"}]})
            .to_string(),
            json!({"game_id": id, "players": [{"account_id": id, "race_name": "A"}], "settings": 3})
                .to_string(),
        ];
        for raw in bad {
            assert!(StartConfig::parse(&raw).is_err(), "{raw} accepted");
        }
        let ok = StartConfig::parse(
            &json!({"game_id": id, "players": [{"account_id": id, "race_name": "A"}]}).to_string(),
        )
        .unwrap();
        assert_eq!(ok.settings, json!({}));
    }
}
