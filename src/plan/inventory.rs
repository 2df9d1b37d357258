//! Guests and hosts from an Ansible inventory (INI or YAML), where a fleet
//! is already described: each group is a technology, the members of the
//! group the plan names as `hypervisors` are `[[host]]`s, and each member's
//! `ansible_host`, `ansible_port`, `ansible_user` and
//! `ansible_ssh_private_key_file` say how to reach it. Host variables
//! `vmbench_<key>` set a guest's key of the same name (`vmbench_host`,
//! `vmbench_interface`, `vmbench_discover`, ...).
//!
//! The inventory is written into the plan's text as `[[guest]]` and
//! `[[host]]` entries when the plan is read, so that a recording holds the
//! fleet as it was and replays without the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The line that starts the entries an inventory was written into; a plan
/// text that has it is not expanded again (a replay reads it so).
pub const EXPANDED_MARK: &str = "# vmbench: the inventory, written out";

/// `[inventory]` in a plan.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InventorySpec {
    /// The inventory file, relative to the plan's folder.
    pub file: String,
    /// The group whose members are hypervisor hosts, not guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisors: Option<String>,
    /// The groups that are technologies, their members the guests; the
    /// inventory's other groups (a data centre, a role) only lend their
    /// variables. Without it every group is a technology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technologies: Option<Vec<String>>,
    /// For members whose inventory says none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
}

type Vars = BTreeMap<String, String>;

#[derive(Default, Debug)]
struct Group {
    /// Members listed in the group itself.
    hosts: Vec<String>,
    vars: Vars,
    children: Vec<String>,
}

#[derive(Default, Debug)]
struct Inventory {
    groups: BTreeMap<String, Group>,
    /// Each member's own variables, members in the order first listed.
    members: Vec<(String, Vars)>,
}

impl Inventory {
    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    fn add_member(&mut self, group: &str, name: &str, vars: Vars) {
        let listed = &mut self.group(group).hosts;
        if !listed.iter().any(|h| h == name) {
            listed.push(name.to_string());
        }
        match self.members.iter_mut().find(|(n, _)| n == name) {
            Some((_, known)) => known.extend(vars),
            None => self.members.push((name.to_string(), vars)),
        }
    }

    /// Whether `member` is in `group`, itself or through a child group.
    fn contains(&self, group: &str, member: &str, depth: usize) -> bool {
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        depth < 16
            && (g.hosts.iter().any(|h| h == member)
                || g.children
                    .iter()
                    .any(|c| self.contains(c, member, depth + 1)))
    }

    /// How many groups enclose `group` at most (`all` 0, its children 1...).
    fn depth(&self, group: &str, seen: usize) -> usize {
        self.groups
            .iter()
            .filter(|(_, g)| g.children.iter().any(|c| c == group))
            .map(|(parent, _)| {
                if seen > 16 {
                    0
                } else {
                    1 + self.depth(parent, seen + 1)
                }
            })
            .max()
            .unwrap_or(usize::from(group != "all"))
    }

    /// A member's variables as Ansible takes them: `all`'s, then each
    /// group's it is in, parents before children, then its own.
    fn vars_of(&self, member: &str, own: &Vars) -> Vars {
        let mut enclosing: Vec<(usize, &String, &Group)> = self
            .groups
            .iter()
            .filter(|(name, _)| *name == "all" || self.contains(name, member, 0))
            .map(|(name, group)| (self.depth(name, 0), name, group))
            .collect();
        enclosing.sort_by_key(|(depth, name, _)| (*depth, *name));
        let mut vars = Vars::new();
        for (_, _, group) in enclosing {
            vars.extend(group.vars.clone());
        }
        vars.extend(own.clone());
        vars
    }
}

/// Reads an inventory file as YAML (`.yml`, `.yaml`) or INI (the rest).
fn read(path: &Path) -> Result<Inventory, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the inventory {}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    );
    if yaml {
        parse_yaml(&text)
    } else {
        parse_ini(&text)
    }
    .map_err(|e| format!("the inventory {}: {e}", path.display()))
}

fn key_values<'a>(words: impl Iterator<Item = &'a str>, line: usize) -> Result<Vars, String> {
    words
        .map(|word| {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("line {line}: {word:?} is not key=value"))?;
            Ok((key.to_string(), value.trim_matches(['"', '\'']).to_string()))
        })
        .collect()
}

fn parse_ini(text: &str) -> Result<Inventory, String> {
    enum Section {
        Hosts(String),
        Vars(String),
        Children(String),
    }
    let mut inventory = Inventory::default();
    let mut section = Section::Hosts("ungrouped".into());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        // A comment runs from `#` or `;` at the start or after a space.
        let uncommented = [" #", " ;", "\t#", "\t;"]
            .iter()
            .filter_map(|mark| raw.find(mark))
            .min()
            .map_or(raw, |at| &raw[..at]);
        let trimmed = uncommented.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = match name.split_once(':') {
                None => Section::Hosts(name.to_string()),
                Some((group, "vars")) => Section::Vars(group.to_string()),
                Some((group, "children")) => Section::Children(group.to_string()),
                Some(_) => return Err(format!("line {line}: section [{name}] is not understood")),
            };
            inventory.group(match &section {
                Section::Hosts(g) | Section::Vars(g) | Section::Children(g) => g,
            });
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let mut words = trimmed.split_whitespace();
                let name = words.next().unwrap_or_default();
                if name.contains('[') {
                    return Err(format!(
                        "line {line}: host ranges such as {name:?} are not expanded; list each host"
                    ));
                }
                let vars = key_values(words, line)?;
                inventory.add_member(&group.clone(), name, vars);
            }
            Section::Vars(group) => {
                let vars = key_values(std::iter::once(trimmed), line)?;
                inventory.group(&group.clone()).vars.extend(vars);
            }
            Section::Children(group) => {
                let child = trimmed.to_string();
                inventory.group(&child);
                inventory.group(&group.clone()).children.push(child);
            }
        }
    }
    Ok(inventory)
}

fn scalar(value: &yaml_rust2::Yaml) -> Option<String> {
    use yaml_rust2::Yaml;
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml_vars(node: &yaml_rust2::Yaml) -> Result<Vars, String> {
    match node {
        yaml_rust2::Yaml::Hash(map) => map
            .iter()
            .map(|(k, v)| match (scalar(k), scalar(v)) {
                (Some(k), Some(v)) => Ok((k, v)),
                (k, _) => Err(format!("variable {k:?} is not a plain value")),
            })
            .collect(),
        yaml_rust2::Yaml::Null | yaml_rust2::Yaml::BadValue => Ok(Vars::new()),
        _ => Err("variables are not a mapping".into()),
    }
}

fn yaml_group(
    inventory: &mut Inventory,
    name: &str,
    node: &yaml_rust2::Yaml,
    depth: usize,
) -> Result<(), String> {
    if depth > 16 {
        return Err(format!("group {name} nests too deep"));
    }
    inventory.group(name);
    if let Some(hosts) = node["hosts"].as_hash() {
        for (member, vars) in hosts {
            let member = scalar(member).ok_or("a host name is not a plain value")?;
            let vars = yaml_vars(vars).map_err(|e| format!("host {member}: {e}"))?;
            inventory.add_member(name, &member, vars);
        }
    }
    let vars = yaml_vars(&node["vars"]).map_err(|e| format!("group {name}: {e}"))?;
    inventory.group(name).vars.extend(vars);
    if let Some(children) = node["children"].as_hash() {
        for (child, child_node) in children {
            let child = scalar(child).ok_or("a group name is not a plain value")?;
            inventory.group(name).children.push(child.clone());
            yaml_group(inventory, &child, child_node, depth + 1)?;
        }
    }
    Ok(())
}

fn parse_yaml(text: &str) -> Result<Inventory, String> {
    let documents = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let mut inventory = Inventory::default();
    let Some(top) = documents.first().and_then(|d| d.as_hash()) else {
        return Err("it is not a mapping of groups".into());
    };
    for (name, node) in top {
        let name = scalar(name).ok_or("a group name is not a plain value")?;
        yaml_group(&mut inventory, &name, node, 0)?;
    }
    Ok(inventory)
}

/// A guest key's value from an inventory's text (an INI inventory has only
/// text): the plan's whole-number and yes-or-no keys as such, the rest as
/// strings (a `process` pattern of digits stays a pattern).
fn toml_value(key: &str, text: &str) -> toml::Value {
    const NUMBERS: [&str; 4] = ["port", "pid", "keepalive_count", "reconnect_attempts"];
    const SWITCHES: [&str; 2] = ["discover", "reconnect"];
    if NUMBERS.contains(&key)
        && let Ok(number) = text.parse::<i64>()
    {
        return toml::Value::Integer(number);
    }
    if SWITCHES.contains(&key) {
        match text {
            "true" | "True" | "yes" => return toml::Value::Boolean(true),
            "false" | "False" | "no" => return toml::Value::Boolean(false),
            _ => {}
        }
    }
    toml::Value::String(text.to_string())
}

/// The inventory's members as `[[guest]]` and `[[host]]` TOML entries.
pub(super) fn expand(spec: &InventorySpec, origin: &str) -> Result<String, String> {
    let folder = Path::new(origin).parent().unwrap_or(Path::new(""));
    let inventory = read(&folder.join(&spec.file))?;
    let hypervisors = spec.hypervisors.as_deref();
    let named = hypervisors
        .into_iter()
        .chain(spec.technologies.iter().flatten().map(String::as_str));
    for group in named {
        if !inventory.groups.contains_key(group) {
            return Err(format!(
                "the inventory {} has no group {group:?}",
                spec.file
            ));
        }
    }
    let mut guests = Vec::new();
    let mut hosts = Vec::new();
    for (member, own) in &inventory.members {
        let vars = inventory.vars_of(member, own);
        let mut entry = toml::Table::new();
        entry.insert("name".into(), member.clone().into());
        let address = vars.get("ansible_host").unwrap_or(member);
        entry.insert("address".into(), address.clone().into());
        if let Some(port) = vars.get("ansible_port") {
            entry.insert("port".into(), toml_value("port", port));
        }
        let defaults = [
            ("user", "ansible_user", &spec.user),
            ("identity", "ansible_ssh_private_key_file", &spec.identity),
            ("known_hosts", "", &spec.known_hosts),
        ];
        for (key, ansible, default) in defaults {
            if let Some(value) = vars.get(ansible).or(default.as_ref()) {
                entry.insert(key.into(), value.clone().into());
            }
        }
        let is_host = hypervisors.is_some_and(|g| inventory.contains(g, member, 0));
        if is_host {
            hosts.push(entry);
            continue;
        }
        for (key, value) in &vars {
            if let Some(key) = key.strip_prefix("vmbench_") {
                entry.insert(key.into(), toml_value(key, value));
            }
        }
        // Its technology: the group that holds it (of those the plan
        // names, or any but `all`, `ungrouped` and the hypervisors).
        // Named, a group holds its children's members too; otherwise only
        // the groups that list a member are its own.
        let technologies: Vec<&String> = inventory
            .groups
            .iter()
            .filter(|(name, group)| match &spec.technologies {
                Some(named) => named.contains(name) && inventory.contains(name, member, 0),
                None => {
                    !["all", "ungrouped"].contains(&name.as_str())
                        && Some(name.as_str()) != hypervisors
                        && group.hosts.contains(member)
                }
            })
            .map(|(name, _)| name)
            .collect();
        let technology = match technologies.as_slice() {
            [one] => one.to_string(),
            // Not a guest of the comparison.
            [] if spec.technologies.is_some() => continue,
            [] => {
                return Err(format!(
                    "{member} is in no group of the inventory {}, and its group is its technology",
                    spec.file
                ));
            }
            many => {
                return Err(format!(
                    "{member} is in groups {} of the inventory {}: which is its technology? \
                     (`technologies` in [inventory] names the groups that are)",
                    many.iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    spec.file
                ));
            }
        };
        entry.insert("transport".into(), "ssh".into());
        entry.insert("technology".into(), technology.into());
        guests.push(entry);
    }
    // Only arrays of tables: a plain key here would land in whatever table
    // the plan's text ends in.
    let mut document = toml::Table::new();
    for (key, entries) in [("guest", guests), ("host", hosts)] {
        if !entries.is_empty() {
            let entries = entries.into_iter().map(toml::Value::Table).collect();
            document.insert(key.into(), toml::Value::Array(entries));
        }
    }
    let text = toml::to_string(&document).map_err(|e| e.to_string())?;
    Ok(format!(
        "\n{EXPANDED_MARK} (from {}, when the plan was read)\n{text}",
        spec.file
    ))
}

#[cfg(test)]
mod tests {
    use crate::plan::LoadedPlan;

    const INI: &str = "\
# the rack
[kvm]
vm1 ansible_host=198.18.0.11 vmbench_host=h1 vmbench_discover=true
vm2 ansible_host=198.18.0.12 ansible_port=2222

[xen]
dom1 ansible_host=198.18.0.13 ansible_user=admin

[hypervisors]
h1 ansible_host=198.18.0.2

[guests:children]
kvm
xen

[guests:vars]
ansible_ssh_private_key_file=/keys/rack
";

    const YAML: &str = "\
all:
  vars:
    ansible_ssh_private_key_file: /keys/rack
  children:
    hypervisors:
      hosts:
        h1:
          ansible_host: 198.18.0.2
    kvm:
      hosts:
        vm1:
          ansible_host: 198.18.0.11
          vmbench_host: h1
          vmbench_discover: true
        vm2:
          ansible_host: 198.18.0.12
          ansible_port: 2222
    xen:
      hosts:
        dom1: { ansible_host: 198.18.0.13, ansible_user: admin }
";

    const PLAN: &str = "name = \"rack\"\n\n[inventory]\nfile = \"FILE\"\nhypervisors = \
                        \"hypervisors\"\nuser = \"root\"\nknown_hosts = \"/keys/known\"\n\n\
                        [[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\n\
                        duration = \"1s\"\nconcurrency = [1]\n";

    fn plan_over(file: &str, text: &str) -> (tempfile::TempDir, Result<LoadedPlan, String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(file), text).expect("inventory");
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, PLAN.replace("FILE", file)).expect("plan");
        let loaded = LoadedPlan::from_file(&plan).map_err(|e| e.to_string());
        (dir, loaded)
    }

    #[test]
    fn ini_and_yaml_inventories_give_the_same_fleet() {
        for (file, text) in [("rack.ini", INI), ("rack.yml", YAML)] {
            let (_dir, loaded) = plan_over(file, text);
            let plan = loaded.unwrap_or_else(|e| panic!("{file}: {e}")).plan;
            let guests: Vec<(&str, &str, &str, u16, Option<&str>)> = plan
                .guests
                .iter()
                .map(|g| {
                    (
                        g.name(),
                        g.technology.as_str(),
                        g.address.as_deref().unwrap_or_default(),
                        g.port,
                        g.user.as_deref(),
                    )
                })
                .collect();
            assert_eq!(
                guests,
                [
                    ("vm1", "kvm", "198.18.0.11", 22, Some("root")),
                    ("vm2", "kvm", "198.18.0.12", 2222, Some("root")),
                    ("dom1", "xen", "198.18.0.13", 22, Some("admin")),
                ],
                "{file}"
            );
            let vm1 = &plan.guests[0];
            assert_eq!(vm1.host.as_deref(), Some("h1"), "{file}");
            assert!(vm1.discover, "{file}");
            assert_eq!(vm1.identity.as_deref(), Some("/keys/rack"), "{file}");
            assert_eq!(vm1.known_hosts.as_deref(), Some("/keys/known"), "{file}");
            let hosts: Vec<(&str, &str)> = plan
                .hosts
                .iter()
                .map(|h| (h.name(), h.address.as_str()))
                .collect();
            assert_eq!(hosts, [("h1", "198.18.0.2")], "{file}");
        }
    }

    #[test]
    fn a_recording_keeps_the_fleet_without_the_inventory() {
        let (dir, loaded) = plan_over("rack.ini", INI);
        let loaded = loaded.expect("plan");
        drop(dir);
        // What the recording's header holds, read where the file is gone.
        let again = LoadedPlan::parse(&loaded.source, &loaded.origin).expect("replayed plan");
        assert_eq!(again.plan.guests, loaded.plan.guests);
        assert_eq!(again.plan.hosts, loaded.plan.hosts);
    }

    #[test]
    fn an_inventory_that_cannot_say_a_technology_is_refused_with_the_reason() {
        let twice = "[kvm]\nvm1\n[xen]\nvm1\n[hypervisors]\n";
        let (_dir, loaded) = plan_over("twice.ini", twice);
        let error = loaded.expect_err("refused");
        assert!(error.contains("vm1 is in groups kvm, xen"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("site.ini"), "[kvm]\nvm1\n[hypervisors]\n")
            .expect("inventory");
        let plan = dir.path().join("plan.toml");
        let misspelt = PLAN
            .replace("FILE", "site.ini")
            .replace("[inventory]\n", "[inventory]\ntechnologies = [\"kmv\"]\n");
        std::fs::write(&plan, misspelt).expect("plan");
        let error = LoadedPlan::from_file(&plan)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("has no group \"kmv\""), "{error}");
        let (_dir, loaded) = plan_over("range.ini", "[kvm]\nvm[01:04]\n[hypervisors]\n");
        let error = loaded.expect_err("refused");
        assert!(error.contains("host ranges"), "{error}");
        let (_dir, loaded) = plan_over("none.ini", "vm1\n[hypervisors]\n");
        let error = loaded.expect_err("refused");
        assert!(error.contains("vm1 is in no group"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, PLAN.replace("FILE", "missing.ini")).expect("plan");
        let error = LoadedPlan::from_file(&plan)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("cannot read the inventory"), "{error}");
    }

    #[test]
    fn named_technologies_leave_other_groups_and_their_members_out() {
        // Real inventories put a host in several groups: a role, a site.
        let inventory = "[kvm]\nvm1 ansible_host=198.18.0.11  # the first\nvm2\n\n[web]\nvm1\nspare\n\n\
                         [dc1:children]\nkvm\n\n[dc1:vars]\nansible_user=dc1\n\n[kvm:vars]\n\
                         ansible_user=kvm\n\n[hypervisors]\n";
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("site.ini"), inventory).expect("inventory");
        let plan = dir.path().join("plan.toml");
        let text = PLAN
            .replace("FILE", "site.ini")
            .replace("[inventory]\n", "[inventory]\ntechnologies = [\"kvm\"]\n");
        std::fs::write(&plan, text).expect("plan");
        let plan = LoadedPlan::from_file(&plan).expect("plan").plan;
        let guests: Vec<(&str, &str, Option<&str>, Option<&str>)> = plan
            .guests
            .iter()
            .map(|g| {
                (
                    g.name(),
                    g.technology.as_str(),
                    g.address.as_deref(),
                    g.user.as_deref(),
                )
            })
            .collect();
        // `spare` is in no technology; the child group's variables win over
        // its parent's; the comment is not part of the address.
        assert_eq!(
            guests,
            [
                ("vm1", "kvm", Some("198.18.0.11"), Some("kvm")),
                ("vm2", "kvm", Some("vm2"), Some("kvm")),
            ]
        );
    }
}
