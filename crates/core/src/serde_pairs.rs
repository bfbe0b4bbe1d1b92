//! Maps keyed by tuples, written as lists of `[key, value]` pairs, since
//! JSON object keys are strings (for the local app's saved state).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
    map: &BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(map.iter())
}

pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Levels {
        #[serde(with = "super")]
        by: std::collections::BTreeMap<(String, u64), i64>,
    }

    #[test]
    fn a_tuple_keyed_map_round_trips_through_json() {
        let l = Levels {
            by: [(("shop".to_string(), 7), -2)].into_iter().collect(),
        };
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"{"by":[[["shop",7],-2]]}"#);
        assert_eq!(serde_json::from_str::<Levels>(&json).unwrap(), l);
    }
}
