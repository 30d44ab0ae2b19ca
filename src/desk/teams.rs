//! Support team addresses: where a team's escalations go, and which team a
//! mail comes from (a team answering a ticket by mail is relayed, whatever
//! the inbound analysis thinks of the text).

use std::collections::BTreeMap;

use crate::domain::{EmailAddress, Team};

/// Support team addresses, for mailing escalations and recognising a
/// team's reply.
pub trait Teams: Send + Sync {
    /// The team that owns this address, if any.
    fn team_of(&self, address: &str) -> Option<Team>;
    /// Where escalations for `team` go (none: the team reads the desk only).
    fn address_of(&self, team: Team) -> Option<EmailAddress>;
}

/// Team addresses from `desk.teams` (keys validated by the configuration;
/// an empty or invalid address means "no mail for this team").
#[derive(Debug, Clone, Default)]
pub struct ConfigTeams {
    teams: BTreeMap<Team, EmailAddress>,
}

impl ConfigTeams {
    /// From the configuration's `team name → address` map.
    pub fn new(teams: &BTreeMap<String, String>) -> Self {
        ConfigTeams {
            teams: teams
                .iter()
                .filter_map(|(t, a)| {
                    let addr: EmailAddress = a.to_ascii_lowercase().parse().ok()?;
                    Some((t.parse::<Team>().ok()?, addr))
                })
                .collect(),
        }
    }
}

impl Teams for ConfigTeams {
    fn team_of(&self, address: &str) -> Option<Team> {
        let address = address.trim().to_ascii_lowercase();
        self.teams
            .iter()
            .find(|(_, a)| a.as_str() == address)
            .map(|(t, _)| *t)
    }

    fn address_of(&self, team: Team) -> Option<EmailAddress> {
        self.teams.get(&team).cloned()
    }
}

/// The team's name as customers read it (acknowledgements, relays).
pub fn team_label(team: Team) -> &'static str {
    match team {
        Team::EdeliverySupport => "eDelivery Customer Support",
        Team::CustomerService => "Cisco Customer Service",
        Team::Exportops => "Export Operations",
        Team::SacSupport => "SAC",
        Team::Licensing => "Global Licensing Operations",
        Team::Ucss => "UCSS Support",
        Team::Cuwl => "CUWL Support",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_both_ways_case_insensitively() {
        let mut m = BTreeMap::new();
        m.insert(
            "exportops".to_string(),
            "ExportOps@Cisco.Example".to_string(),
        );
        m.insert("licensing".to_string(), String::new());
        let t = ConfigTeams::new(&m);
        assert_eq!(t.team_of("exportops@cisco.example"), Some(Team::Exportops));
        assert_eq!(t.team_of("EXPORTOPS@cisco.example"), Some(Team::Exportops));
        assert_eq!(
            t.address_of(Team::Exportops).unwrap().as_str(),
            "exportops@cisco.example"
        );
        assert_eq!(t.address_of(Team::Licensing), None);
        assert_eq!(t.team_of("someone@cisco.example"), None);
    }
}
