//! The API access `mcp-operator run` needs, as data: every request the controllers, the
//! storage-version migrator, the leader election, the webhooks' reference lookups and the
//! `--self-signed` mode make, and nothing else.
//!
//! The Helm chart's RBAC is written from this table and its tests compare the two both ways
//! (everything needed is granted, nothing else is), and the install tests check every request
//! the running operator really made against what the chart granted. A new API call in
//! `controller/`, `webhook/lookup.rs` or `webhook/selfmanaged.rs` needs a row here first.

/// Where a rule must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace the controllers watch: a ClusterRole by default, one Role per
    /// namespace when the chart is namespace-scoped.
    Watched,
    /// The operator's own namespace (`--pod-namespace`): a Role there.
    OwnNamespace,
    /// Cluster-scoped objects, or objects of every namespace: a ClusterRole.
    Cluster,
}

/// When a rule is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    Always,
    /// `--storage-migration` (the default): list and rewrite objects of every namespace.
    StorageMigration,
    /// `--leader-elect`.
    LeaderElection,
    /// `--self-signed`: no cert-manager, the operator keeps its own CA.
    SelfSigned,
}

/// Which objects a rule is limited to (RBAC `resourceNames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    Any,
    /// `--lease-name` (default `mcp-operator-leader`).
    Lease,
    /// `--webhook-secret-name`.
    WebhookSecret,
    /// `--webhook-configuration-name` (both configurations share it).
    WebhookConfiguration,
    /// Our CRDs (`<plural>.toolhive.stacklok.dev`).
    OurCrds,
}

/// One RBAC rule `run` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub needed: Needed,
    pub scope: Scope,
    pub group: &'static str,
    /// Plural resource names, `plural/subresource` for subresources.
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub names: Names,
    /// What in the code makes the request.
    pub why: &'static str,
}

const fn rule(
    needed: Needed,
    scope: Scope,
    group: &'static str,
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    names: Names,
    why: &'static str,
) -> Rule {
    Rule {
        needed,
        scope,
        group,
        resources,
        verbs,
        names,
        why,
    }
}

use Names::Any;
use Needed::*;
use Scope::*;

const OUR: &str = crate::api::GROUP;

/// Every rule, in the order the chart renders them.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    // The MCPServer controller (controller/mcpserver.rs).
    rule(Always, Watched, OUR, &["mcpservers"], &["get", "list", "watch"], Any,
        "the reconciled objects' watch"),
    rule(Always, Watched, OUR, &["mcpservers/status"], &["patch"], Any,
        "status patches"),
    // Children carry a controller ownerReference with blockOwnerDeletion, which clusters with
    // the OwnerReferencesPermissionEnforcement plugin (OpenShift) allow only with this.
    rule(Always, Watched, OUR, &["mcpservers/finalizers"], &["update"], Any,
        "ownerReferences with blockOwnerDeletion"),
    rule(Always, Watched, OUR, &["mcpgroups", "mcptelemetryconfigs", "mcptoolconfigs"], &["get", "list", "watch"], Any,
        "referenced objects' watches; webhook reference lookups"),
    rule(Always, Watched, OUR, &["mcpauthzconfigs", "mcpexternalauthconfigs", "mcpoidcconfigs"], &["get", "list", "watch"], Any,
        "the auth configs' own controllers; workloads resolve their references from the same watches; webhook reference lookups"),
    // The MCPGroup controller and the shared-config ones (controller/mcpgroup.rs,
    // shared_config.rs: MCPToolConfig, MCPTelemetryConfig, and the auth configs of
    // controller/auth_configs.rs).
    rule(Always, Watched, OUR, &["mcpauthzconfigs/status", "mcpexternalauthconfigs/status", "mcpgroups/status", "mcpoidcconfigs/status", "mcptelemetryconfigs/status", "mcptoolconfigs/status"], &["patch"], Any,
        "status patches"),
    rule(Always, Watched, OUR, &["mcpauthzconfigs", "mcpexternalauthconfigs", "mcpoidcconfigs", "mcptelemetryconfigs", "mcptoolconfigs"], &["patch"], Any,
        "the finalizer that holds deletion while the config is referenced"),
    rule(Always, Watched, "", &["secrets"], &["get", "list", "watch"], Any,
        "metadata-only watch; pull credentials; webhook key checks"),
    rule(Always, Watched, "", &["configmaps"], &["get", "list", "watch", "create", "patch"], Any,
        "child ConfigMaps (server-side apply; read before the first apply to refuse a user's object of the same name); webhook key checks"),
    rule(Always, Watched, "", &["services"], &["get", "list", "watch", "create", "patch", "delete"], Any,
        "child Services (read before the first apply to refuse a user's object of the same name; server-side apply; merge patch of selector and ports; removed while authentication the data path cannot enforce holds the workload)"),
    rule(Always, Watched, "", &["serviceaccounts"], &["get", "list", "watch", "create", "patch", "delete"], Any,
        "child ServiceAccounts (read before the first apply; server-side apply; removed when no longer wanted)"),
    rule(Always, Watched, "apps", &["deployments"], &["get", "list", "watch", "create", "patch", "delete"], Any,
        "child Deployments (read before the first apply; server-side apply; removed while authentication the data path cannot enforce holds the workload)"),
    rule(Always, Watched, "events.k8s.io", &["events"], &["create", "patch"], Any,
        "events on MCPServers"),
    // The MCPRegistry controller (controller/mcpregistry.rs). Its ConfigMap, ServiceAccount,
    // Deployment and Service children, the pgpass Secret's metadata and its events use the rows
    // above.
    rule(Always, Watched, OUR, &["mcpregistries"], &["get", "list", "watch"], Any,
        "the reconciled MCPRegistries' watch"),
    rule(Always, Watched, OUR, &["mcpregistries/status"], &["patch"], Any,
        "MCPRegistry status patches"),
    rule(Always, Watched, OUR, &["mcpregistries/finalizers"], &["update"], Any,
        "ownerReferences with blockOwnerDeletion on MCPRegistry children"),
    rule(Always, Watched, "rbac.authorization.k8s.io", &["roles", "rolebindings"], &["get", "list", "watch", "create", "patch"], Any,
        "the registry API's Role and RoleBinding (read before the first apply; server-side apply)"),
    // Kubernetes lets nobody grant what they do not hold: the registry API's Role
    // (mcpregistry_children::role_rules) is granted only by an operator that holds all of it.
    rule(Always, Watched, OUR, &["mcpservers", "mcpremoteproxies", "virtualmcpservers"], &["get", "list", "watch"], Any,
        "held to grant it in the registry API's Role"),
    rule(Always, Watched, "", &["services"], &["get", "list", "watch"], Any,
        "held to grant it in the registry API's Role"),
    rule(Always, Watched, "gateway.networking.k8s.io", &["httproutes", "gateways"], &["get", "list", "watch"], Any,
        "held to grant it in the registry API's Role"),
    rule(Always, Watched, "", &["configmaps"], &["get", "list", "watch", "create", "update", "patch", "delete"], Any,
        "held to grant it in the registry API's Role"),
    rule(Always, Watched, "coordination.k8s.io", &["leases"], &["get", "list", "watch", "create", "update", "patch", "delete"], Any,
        "held to grant it in the registry API's Role"),
    rule(Always, Watched, "events.k8s.io", &["events"], &["create", "patch"], Any,
        "held to grant it in the registry API's Role"),
    // The MCPRemoteProxy controller (controller/mcpremoteproxy.rs); its children, header
    // Secrets, MCPToolConfigs and Events need only the rows above.
    rule(Always, Watched, OUR, &["mcpremoteproxies"], &["get", "list", "watch"], Any,
        "the reconciled MCPRemoteProxies' watch; group members and tool-config users"),
    rule(Always, Watched, OUR, &["mcpremoteproxies/status"], &["patch"], Any,
        "MCPRemoteProxy status patches"),
    rule(Always, Watched, OUR, &["mcpremoteproxies/finalizers"], &["update"], Any,
        "ownerReferences with blockOwnerDeletion on MCPRemoteProxy children"),
    // The VirtualMCPServer and MCPServerEntry controllers (controller/virtualmcpserver.rs,
    // mcpserverentry.rs). The VirtualMCPServer's children, its members (MCPServers and
    // MCPRemoteProxies through the shared reference watch), MCPToolConfigs, auth configs,
    // Secrets' and ConfigMaps' metadata and Events need only the rows above.
    rule(Always, Watched, OUR, &["mcpserverentries", "virtualmcpservers"], &["get", "list", "watch"], Any,
        "the VirtualMCPServer and MCPServerEntry reconcilers' watches; group members"),
    rule(Always, Watched, OUR, &["mcpserverentries/status", "virtualmcpservers/status"], &["patch"], Any,
        "VirtualMCPServer and MCPServerEntry status patches"),
    rule(Always, Watched, OUR, &["virtualmcpservers/finalizers"], &["update"], Any,
        "ownerReferences with blockOwnerDeletion on VirtualMCPServer children"),
    // The storage-version migrator (controller/migrate.rs): objects of every namespace.
    rule(StorageMigration, Cluster, "apiextensions.k8s.io", &["customresourcedefinitions"], &["list"], Any,
        "finds the CRDs to migrate"),
    rule(StorageMigration, Cluster, "apiextensions.k8s.io", &["customresourcedefinitions/status"], &["patch"], Any,
        "trims storedVersions"),
    rule(StorageMigration, Cluster, OUR,
        &["mcpauthzconfigs", "mcpexternalauthconfigs", "mcpgroups", "mcpoidcconfigs", "mcpregistries",
          "mcpremoteproxies", "mcpserverentries", "mcpservers", "mcptelemetryconfigs", "mcptoolconfigs",
          "virtualmcpservers"],
        &["get", "list", "update"], Any, "rewrites every object at the storage version"),
    // Cluster-scoped CRDs get their events in `default`.
    rule(StorageMigration, Cluster, "events.k8s.io", &["events"], &["create", "patch"], Any,
        "the migration's event on the CRD"),
    // Leader election (controller/leader.rs). `create` cannot be limited by name in RBAC.
    rule(LeaderElection, OwnNamespace, "coordination.k8s.io", &["leases"], &["create"], Any,
        "creates the lease"),
    rule(LeaderElection, OwnNamespace, "coordination.k8s.io", &["leases"], &["get", "update"], Names::Lease,
        "acquires, renews and releases the lease"),
    // --self-signed (webhook/selfmanaged.rs).
    rule(SelfSigned, OwnNamespace, "", &["secrets"], &["create"], Any,
        "creates the shared CA and serving pair"),
    rule(SelfSigned, OwnNamespace, "", &["secrets"], &["get", "update"], Names::WebhookSecret,
        "reads and renews the shared pair"),
    rule(SelfSigned, Cluster, "admissionregistration.k8s.io",
        &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
        &["get", "patch"], Names::WebhookConfiguration, "sets the webhooks' caBundle"),
    rule(SelfSigned, Cluster, "apiextensions.k8s.io", &["customresourcedefinitions"], &["get", "patch"], Names::OurCrds,
        "sets the conversion webhook's caBundle"),
];

/// The rules for one configuration of `run`.
pub fn rules(
    leader_election: bool,
    storage_migration: bool,
    self_signed: bool,
) -> impl Iterator<Item = &'static Rule> {
    RULES.iter().filter(move |r| match r.needed {
        Always => true,
        StorageMigration => storage_migration,
        LeaderElection => leader_election,
        SelfSigned => self_signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SERVED;

    #[test]
    fn no_wildcards_and_only_known_verbs() {
        let verbs = [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        for r in RULES {
            assert!(!r.group.contains('*'), "{r:?}");
            assert!(r.resources.iter().all(|x| !x.contains('*')), "{r:?}");
            assert!(r.verbs.iter().all(|v| verbs.contains(v)), "{r:?}");
        }
    }

    #[test]
    fn the_migrator_may_rewrite_every_served_kind() {
        let migrator = RULES
            .iter()
            .find(|r| r.needed == StorageMigration && r.group == OUR)
            .unwrap();
        for served in SERVED {
            assert!(
                migrator.resources.contains(&served.plural),
                "{} is not covered",
                served.plural
            );
        }
    }

    #[test]
    fn self_signed_adds_rules_only_when_asked() {
        assert!(rules(true, true, false).all(|r| r.needed != SelfSigned));
        assert_eq!(
            rules(true, true, true)
                .filter(|r| r.needed == SelfSigned)
                .count(),
            4
        );
    }
}
