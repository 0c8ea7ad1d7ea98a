//! The one place that decides who may do what, by Quay's rules (`auth/permissions.py` and the
//! down-scoping of `endpoints/v2/v2auth.py`).
//!
//! Everything here is a pure function of facts the caller loads from the database: who is
//! calling ([`Caller`]), how they stand in the namespace ([`NamespaceFacts`]) and in the
//! repository ([`RepoFacts`]), and the instance switches ([`Policy`]).
//!
//! Quay's model, which these functions follow:
//! - The owner of a user namespace, and every member of a team with role `admin`, is admin of
//!   every repository in the namespace (existing or not). Team roles `creator` and `member` give
//!   no repository access by themselves; explicit `RepositoryPermission` rows (direct or through
//!   a team) do.
//! - An OAuth token caps every role it derives from permissions: repository roles by the
//!   strongest of `repo:read` / `repo:write` / `repo:admin`, team roles (which decide creating
//!   repositories and administering organizations) by `repo:create` (creator) or `org:admin`
//!   (admin). Reading a public repository is not a permission but a property of the repository,
//!   so no token scope takes it away; the same goes for global read-only superusers.
//! - Repository states gate writes: only `NORMAL` repositories accept pushes from their writers
//!   and `*`; mirrors accept pushes from their mirror robot only.

use crate::scope::{Action, OAuthScopes};

/// A repository role (Quay's `Role` table), ordered `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// A team's role in its organization (Quay's `TeamRole` table), ordered
/// `Member < Creator < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TeamRole {
    Member,
    Creator,
    Admin,
}

impl TeamRole {
    pub fn parse(s: &str) -> Option<TeamRole> {
        match s {
            "member" => Some(TeamRole::Member),
            "creator" => Some(TeamRole::Creator),
            "admin" => Some(TeamRole::Admin),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            TeamRole::Member => "member",
            TeamRole::Creator => "creator",
            TeamRole::Admin => "admin",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

/// `Repository.state`, stored as Quay's integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RepoState {
    Normal,
    ReadOnly,
    Mirror,
    MarkedForDeletion,
    OrgMirror,
}

impl RepoState {
    pub const fn from_i32(value: i32) -> Option<RepoState> {
        match value {
            0 => Some(RepoState::Normal),
            1 => Some(RepoState::ReadOnly),
            2 => Some(RepoState::Mirror),
            3 => Some(RepoState::MarkedForDeletion),
            4 => Some(RepoState::OrgMirror),
            _ => None,
        }
    }

    pub const fn as_i32(self) -> i32 {
        match self {
            RepoState::Normal => 0,
            RepoState::ReadOnly => 1,
            RepoState::Mirror => 2,
            RepoState::MarkedForDeletion => 3,
            RepoState::OrgMirror => 4,
        }
    }

    /// Quay's enum names, as the API shows them.
    pub const fn as_str(self) -> &'static str {
        match self {
            RepoState::Normal => "NORMAL",
            RepoState::ReadOnly => "READ_ONLY",
            RepoState::Mirror => "MIRROR",
            RepoState::MarkedForDeletion => "MARKED_FOR_DELETION",
            RepoState::OrgMirror => "ORG_MIRROR",
        }
    }

    pub fn parse(s: &str) -> Option<RepoState> {
        [
            RepoState::Normal,
            RepoState::ReadOnly,
            RepoState::Mirror,
            RepoState::MarkedForDeletion,
            RepoState::OrgMirror,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// Who is calling, as far as authorization cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// A user. `superuser` is membership of `SUPER_USERS`; `global_readonly` of
    /// `GLOBAL_READONLY_SUPER_USERS`. When both are set the read-only status wins, as in Quay.
    User {
        superuser: bool,
        global_readonly: bool,
    },
    /// A robot account. Robots never own a namespace; they act through teams and explicit
    /// permissions only.
    Robot,
}

/// The principal and the reach of its credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// `None`: full access (password, app-specific token, robot token, session). `Some`: an
    /// OAuth access token, capped to its scopes.
    pub scopes: Option<OAuthScopes>,
}

impl Caller {
    pub const ANONYMOUS: Caller = Caller {
        principal: Principal::Anonymous,
        scopes: None,
    };

    /// A user who is no kind of superuser, with full access.
    pub const fn user() -> Caller {
        Caller {
            principal: Principal::User {
                superuser: false,
                global_readonly: false,
            },
            scopes: None,
        }
    }

    pub const fn robot() -> Caller {
        Caller {
            principal: Principal::Robot,
            scopes: None,
        }
    }

    /// The same principal acting through an OAuth token with these scopes.
    pub const fn with_scopes(self, scopes: OAuthScopes) -> Caller {
        Caller {
            principal: self.principal,
            scopes: Some(scopes),
        }
    }

    const fn is_anonymous(&self) -> bool {
        matches!(self.principal, Principal::Anonymous)
    }

    /// The strongest repository role the credential allows (Quay's `SCOPE_MAX_REPO_ROLES`).
    fn repo_role_cap(&self) -> Option<Role> {
        let Some(scopes) = self.scopes else {
            return Some(Role::Admin);
        };
        if scopes.contains(OAuthScopes::DIRECT_USER_LOGIN)
            || scopes.contains(OAuthScopes::REPO_ADMIN)
        {
            Some(Role::Admin)
        } else if scopes.contains(OAuthScopes::REPO_WRITE) {
            Some(Role::Write)
        } else if scopes.contains(OAuthScopes::REPO_READ) {
            Some(Role::Read)
        } else {
            None
        }
    }

    /// The strongest team role the credential allows (Quay's `SCOPE_MAX_TEAM_ROLES`).
    fn team_role_cap(&self) -> Option<TeamRole> {
        let Some(scopes) = self.scopes else {
            return Some(TeamRole::Admin);
        };
        if scopes.contains(OAuthScopes::DIRECT_USER_LOGIN)
            || scopes.contains(OAuthScopes::ORG_ADMIN)
        {
            Some(TeamRole::Admin)
        } else if scopes.contains(OAuthScopes::REPO_CREATE) {
            Some(TeamRole::Creator)
        } else {
            None
        }
    }

    /// A superuser whose powers apply: `FEATURE_SUPERUSERS_FULL_ACCESS` is on, the user is not
    /// (also) a global read-only superuser, and an OAuth token carries `super:user` (Quay only
    /// grants the superuser need to `super:user` or full-access credentials).
    fn is_full_access_superuser(&self, policy: &Policy) -> bool {
        let superuser = matches!(
            self.principal,
            Principal::User {
                superuser: true,
                global_readonly: false
            }
        );
        let scope_allows = self.scopes.is_none_or(|s| {
            s.contains(OAuthScopes::SUPER_USER) || s.contains(OAuthScopes::DIRECT_USER_LOGIN)
        });
        superuser && policy.superusers_full_access && scope_allows
    }

    const fn is_global_readonly_superuser(&self) -> bool {
        matches!(
            self.principal,
            Principal::User {
                global_readonly: true,
                ..
            }
        )
    }
}

/// The caller's relation to a namespace (user or organization) that exists. When the namespace
/// does not exist there is nothing to grant (Quay: empty actions), so no facts are needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceFacts {
    pub is_org: bool,
    /// The namespace is the calling user's own. Ignored for robots and anonymous callers.
    pub owned_by_caller: bool,
    /// The best role among the caller's teams in this organization.
    pub team_role: Option<TeamRole>,
    /// `User.enabled` of the namespace. A disabled namespace grants nothing; at `/v2/auth` Quay
    /// answers 405 `DENIED` before looking at permissions, which is the caller's job.
    pub enabled: bool,
}

/// The caller's relation to an existing repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoFacts {
    pub visibility: Visibility,
    pub state: RepoState,
    /// The best explicit `RepositoryPermission` of the caller: direct, or through any of its
    /// teams.
    pub granted: Option<Role>,
    /// The caller is the robot of this repository's mirror (or of its organization's mirror for
    /// `ORG_MIRROR`).
    pub caller_is_mirror_robot: bool,
}

/// Instance-wide switches from `config.yaml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `FEATURE_ANONYMOUS_ACCESS` (Quay default: true).
    pub anonymous_access: bool,
    /// `FEATURE_SUPERUSERS_FULL_ACCESS` (Quay default: false).
    pub superusers_full_access: bool,
    /// `REGISTRY_STATE: readonly`.
    pub registry_read_only: bool,
}

impl Default for Policy {
    /// Quay's defaults.
    fn default() -> Self {
        Policy {
            anonymous_access: true,
            superusers_full_access: false,
            registry_read_only: false,
        }
    }
}

/// What `/v2/auth` grants for one requested repository scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Granted actions, in Quay's order (`push`, `pull`, `*`), each at most once.
    pub actions: Vec<Action>,
    /// The repository does not exist and must be created now, before the token is issued
    /// (Quay creates it inside `/v2/auth`, private unless `CREATE_PRIVATE_REPO_ON_PUSH` is false,
    /// with an admin permission for its creator and the organization's prototypes applied).
    pub create_repository: bool,
}

impl Grant {
    pub fn allows(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }
}

/// The caller's standing in the namespace before any token cap: the owner of a user namespace
/// counts as its admin ("every user is the admin of their own org" in Quay).
fn namespace_team_role(caller: &Caller, ns: &NamespaceFacts) -> Option<TeamRole> {
    match caller.principal {
        Principal::Anonymous => None,
        Principal::User { .. } if ns.owned_by_caller => Some(TeamRole::Admin),
        Principal::User { .. } | Principal::Robot => ns.team_role,
    }
}

/// The caller's standing in the namespace as its credential allows.
fn capped_team_role(caller: &Caller, ns: &NamespaceFacts) -> Option<TeamRole> {
    namespace_team_role(caller, ns).min(caller.team_role_cap())
}

/// The caller's effective role on an existing repository, before state gating; `None` when the
/// caller may not even read it.
///
/// The role is the strongest of: admin for the namespace owner or an organization admin team
/// member, the explicit `granted` role, and admin for a full-access superuser; capped by an
/// OAuth token's `repo:*` scopes. Then, without any cap: read on a public repository (for
/// anonymous callers only when `anonymous_access` is on) and read for a global read-only
/// superuser. A disabled namespace, and a repository marked for deletion, give `None` to
/// everyone.
pub fn repository_role(
    caller: &Caller,
    ns: &NamespaceFacts,
    repo: &RepoFacts,
    policy: &Policy,
) -> Option<Role> {
    if !ns.enabled || repo.state == RepoState::MarkedForDeletion {
        return None;
    }
    let public = repo.visibility == Visibility::Public;
    if caller.is_anonymous() {
        return (public && policy.anonymous_access).then_some(Role::Read);
    }

    let namespace_wide =
        (namespace_team_role(caller, ns) == Some(TeamRole::Admin)).then_some(Role::Admin);
    let superuser = caller
        .is_full_access_superuser(policy)
        .then_some(Role::Admin);
    let from_permissions = namespace_wide
        .max(repo.granted)
        .max(superuser)
        .min(caller.repo_role_cap());

    let public_read = public.then_some(Role::Read);
    let readonly_superuser = caller.is_global_readonly_superuser().then_some(Role::Read);
    from_permissions.max(public_read).max(readonly_superuser)
}

/// Whether [`repository_role`] reaches `needed`: the check behind the API's "read", "write"
/// and "admin" repository endpoints. Endpoints that change content must also refuse
/// repositories whose state is not `NORMAL`.
pub fn repository_allows(
    caller: &Caller,
    ns: &NamespaceFacts,
    repo: &RepoFacts,
    policy: &Policy,
    needed: Role,
) -> bool {
    repository_role(caller, ns, repo, policy) >= Some(needed)
}

/// Whether the caller may create repositories in the namespace: its owner, a member of a
/// `creator` or `admin` team (robots included), or a full-access superuser. OAuth tokens need
/// `repo:create` or `org:admin` (Quay caps team roles, not scopes: `org:admin` allows the admin
/// team role, which includes creating). Never for anonymous callers, in a disabled namespace,
/// or while the registry is read-only.
pub fn can_create_repository(caller: &Caller, ns: &NamespaceFacts, policy: &Policy) -> bool {
    if caller.is_anonymous() || !ns.enabled || policy.registry_read_only {
        return false;
    }
    let team_cap = caller.team_role_cap();
    capped_team_role(caller, ns) >= Some(TeamRole::Creator)
        || (caller.is_full_access_superuser(policy) && team_cap >= Some(TeamRole::Creator))
}

/// Whether the caller administers the namespace (Quay's `AdministerOrganizationPermission`):
/// a member of an `admin` team, the owner of a user namespace, or a full-access superuser;
/// OAuth tokens need `org:admin`. Like Quay, this does not look at `enabled`.
pub fn can_administer_org(caller: &Caller, ns: &NamespaceFacts, policy: &Policy) -> bool {
    let team_cap = caller.team_role_cap();
    capped_team_role(caller, ns) == Some(TeamRole::Admin)
        || (caller.is_full_access_superuser(policy) && team_cap == Some(TeamRole::Admin))
}

/// Whether the caller belongs to the organization (Quay's `OrganizationMemberPermission`): any
/// team role, or owning the user namespace. The token cap applies here too, so an OAuth token
/// without `repo:create` or `org:admin` is no member.
pub fn is_org_member(caller: &Caller, ns: &NamespaceFacts) -> bool {
    capped_team_role(caller, ns).is_some()
}

/// Quay's down-scoping at `GET /v2/auth` for one `repository:` scope: which of the `requested`
/// actions the caller gets on the repository, which is `None` when it does not exist.
///
/// - `pull`: role ≥ read (public repositories, global read-only superusers and namespace admins
///   included; the latter two also on repositories that do not exist).
/// - `push` on an existing repository: role ≥ write and state `NORMAL`; `MIRROR` and
///   `ORG_MIRROR` only for the mirror robot; never `READ_ONLY`.
/// - `push` on a missing repository: granted with `create_repository` when
///   [`can_create_repository`]. The creator then holds an admin permission on the new
///   repository, so `pull` and `*` in the same request are judged against that (capped by an
///   OAuth token's scopes, as Quay does).
/// - `*`: role admin and state `NORMAL`; on a missing repository only when it is being created.
/// - A read-only registry grants no `push`, `*` or creation. A repository marked for deletion,
///   a disabled namespace, and an anonymous caller when anonymous access is off get nothing
///   (the HTTP layer answers the latter two with 405 and 401 before asking).
pub fn registry_actions(
    caller: &Caller,
    ns: &NamespaceFacts,
    repo: Option<&RepoFacts>,
    requested: &[Action],
    policy: &Policy,
) -> Grant {
    let mut grant = Grant::default();
    if !ns.enabled || (caller.is_anonymous() && !policy.anonymous_access) {
        return grant;
    }
    let wants = |action| requested.contains(&action);
    let writable = !policy.registry_read_only;

    let (push, role, admin_state_ok) = match repo {
        Some(repo) if repo.state == RepoState::MarkedForDeletion => return grant,
        Some(repo) => {
            let role = repository_role(caller, ns, repo, policy);
            let state_accepts_push = match repo.state {
                RepoState::Normal => true,
                RepoState::Mirror | RepoState::OrgMirror => repo.caller_is_mirror_robot,
                RepoState::ReadOnly | RepoState::MarkedForDeletion => false,
            };
            let push = wants(Action::Push)
                && writable
                && !caller.is_anonymous()
                && role >= Some(Role::Write)
                && state_accepts_push;
            (push, role, repo.state == RepoState::Normal)
        }
        None => {
            let create = wants(Action::Push) && can_create_repository(caller, ns, policy);
            grant.create_repository = create;
            // Judge the rest against the repository as it will be once created: private (Quay
            // decides publicity before creating), normal, with its creator's admin permission.
            let created = RepoFacts {
                visibility: Visibility::Private,
                state: RepoState::Normal,
                granted: create.then_some(Role::Admin),
                caller_is_mirror_robot: false,
            };
            (
                create,
                repository_role(caller, ns, &created, policy),
                create,
            )
        }
    };

    if push {
        grant.actions.push(Action::Push);
    }
    if wants(Action::Pull) && role >= Some(Role::Read) {
        grant.actions.push(Action::Pull);
    }
    if wants(Action::All) && writable && admin_state_ok && role == Some(Role::Admin) {
        grant.actions.push(Action::All);
    }
    grant
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{All, Pull, Push};

    const PUBLIC: Visibility = Visibility::Public;
    const PRIVATE: Visibility = Visibility::Private;

    fn org(team_role: Option<TeamRole>) -> NamespaceFacts {
        NamespaceFacts {
            is_org: true,
            owned_by_caller: false,
            team_role,
            enabled: true,
        }
    }

    fn own_namespace() -> NamespaceFacts {
        NamespaceFacts {
            is_org: false,
            owned_by_caller: true,
            team_role: None,
            enabled: true,
        }
    }

    fn repo(visibility: Visibility, state: RepoState, granted: Option<Role>) -> RepoFacts {
        RepoFacts {
            visibility,
            state,
            granted,
            caller_is_mirror_robot: false,
        }
    }

    fn superuser() -> Caller {
        Caller {
            principal: Principal::User {
                superuser: true,
                global_readonly: false,
            },
            scopes: None,
        }
    }

    fn readonly_superuser() -> Caller {
        Caller {
            principal: Principal::User {
                superuser: false,
                global_readonly: true,
            },
            scopes: None,
        }
    }

    fn full_access() -> Policy {
        Policy {
            superusers_full_access: true,
            ..Policy::default()
        }
    }

    /// `push,pull,*` style, with ` (create)` when the repository is to be created.
    fn show(grant: &Grant) -> String {
        let actions: Vec<_> = grant.actions.iter().map(|a| a.as_str()).collect();
        let mut out = actions.join(",");
        if grant.create_repository {
            out.push_str(" (create)");
        }
        out
    }

    struct Row {
        who: &'static str,
        caller: Caller,
        ns: NamespaceFacts,
        policy: Policy,
        /// The caller's explicit permission on the existing repositories.
        granted: Option<Role>,
        /// `pull,push,*` requested on an existing public repository.
        public: &'static str,
        /// `pull,push,*` requested on an existing private repository.
        private: &'static str,
        /// `pull,push,*` requested on a repository that does not exist (create on push).
        missing: &'static str,
        /// Only `pull` requested on a repository that does not exist.
        missing_pull: &'static str,
    }

    fn matrix() -> Vec<Row> {
        let d = Policy::default();
        let owner_oauth = |scopes| Caller::user().with_scopes(scopes);
        #[rustfmt::skip]
        let rows = vec![
            Row { who: "anonymous", caller: Caller::ANONYMOUS, ns: org(None), policy: d, granted: None,
                  public: "pull", private: "", missing: "", missing_pull: "" },
            Row { who: "plain user", caller: Caller::user(), ns: org(None), policy: d, granted: None,
                  public: "pull", private: "", missing: "", missing_pull: "" },
            Row { who: "namespace owner", caller: Caller::user(), ns: own_namespace(), policy: d, granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "push,pull,* (create)", missing_pull: "pull" },
            Row { who: "robot with explicit write", caller: Caller::robot(), ns: org(None), policy: d, granted: Some(Role::Write),
                  public: "push,pull", private: "push,pull", missing: "", missing_pull: "" },
            Row { who: "team member with team read grant", caller: Caller::user(), ns: org(Some(TeamRole::Member)), policy: d, granted: Some(Role::Read),
                  public: "pull", private: "pull", missing: "", missing_pull: "" },
            Row { who: "team creator", caller: Caller::user(), ns: org(Some(TeamRole::Creator)), policy: d, granted: None,
                  public: "pull", private: "", missing: "push,pull,* (create)", missing_pull: "" },
            Row { who: "robot in creator team", caller: Caller::robot(), ns: org(Some(TeamRole::Creator)), policy: d, granted: None,
                  public: "pull", private: "", missing: "push,pull,* (create)", missing_pull: "" },
            Row { who: "org admin team", caller: Caller::user(), ns: org(Some(TeamRole::Admin)), policy: d, granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "push,pull,* (create)", missing_pull: "pull" },
            Row { who: "robot in org admin team", caller: Caller::robot(), ns: org(Some(TeamRole::Admin)), policy: d, granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "push,pull,* (create)", missing_pull: "pull" },
            Row { who: "superuser with full access", caller: superuser(), ns: org(None), policy: full_access(), granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "push,pull,* (create)", missing_pull: "pull" },
            Row { who: "superuser without full access", caller: superuser(), ns: org(None), policy: d, granted: None,
                  public: "pull", private: "", missing: "", missing_pull: "" },
            Row { who: "global read-only superuser", caller: readonly_superuser(), ns: org(None), policy: full_access(), granted: None,
                  public: "pull", private: "pull", missing: "pull", missing_pull: "pull" },
            Row { who: "owner via OAuth repo:read", caller: owner_oauth(OAuthScopes::REPO_READ), ns: own_namespace(), policy: d, granted: None,
                  public: "pull", private: "pull", missing: "pull", missing_pull: "pull" },
            Row { who: "owner via OAuth repo:write", caller: owner_oauth(OAuthScopes::REPO_WRITE), ns: own_namespace(), policy: d, granted: None,
                  public: "push,pull", private: "push,pull", missing: "pull", missing_pull: "pull" },
            Row { who: "owner via OAuth repo:admin", caller: owner_oauth(OAuthScopes::REPO_ADMIN), ns: own_namespace(), policy: d, granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "pull", missing_pull: "pull" },
            Row { who: "owner via OAuth repo:create", caller: owner_oauth(OAuthScopes::REPO_CREATE), ns: own_namespace(), policy: d, granted: None,
                  public: "pull", private: "", missing: "push (create)", missing_pull: "" },
            Row { who: "owner via OAuth user:read", caller: owner_oauth(OAuthScopes::USER_READ), ns: own_namespace(), policy: d, granted: None,
                  public: "pull", private: "", missing: "", missing_pull: "" },
            Row { who: "owner via OAuth repo:create repo:read", caller: owner_oauth(OAuthScopes::REPO_CREATE | OAuthScopes::REPO_READ), ns: own_namespace(), policy: d, granted: None,
                  public: "pull", private: "pull", missing: "push,pull (create)", missing_pull: "pull" },
            Row { who: "owner via OAuth repo:create repo:admin", caller: owner_oauth(OAuthScopes::REPO_CREATE | OAuthScopes::REPO_ADMIN), ns: own_namespace(), policy: d, granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "push,pull,* (create)", missing_pull: "pull" },
            Row { who: "org admin via OAuth org:admin", caller: Caller::user().with_scopes(OAuthScopes::ORG_ADMIN), ns: org(Some(TeamRole::Admin)), policy: d, granted: None,
                  public: "pull", private: "", missing: "push (create)", missing_pull: "" },
            Row { who: "superuser via OAuth repo:admin, no super:user", caller: superuser().with_scopes(OAuthScopes::REPO_ADMIN), ns: org(None), policy: full_access(), granted: None,
                  public: "pull", private: "", missing: "", missing_pull: "" },
            Row { who: "superuser via OAuth super:user repo:admin", caller: superuser().with_scopes(OAuthScopes::SUPER_USER | OAuthScopes::REPO_ADMIN), ns: org(None), policy: full_access(), granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "pull", missing_pull: "pull" },
            Row { who: "superuser via OAuth super:user repo:create repo:admin", caller: superuser().with_scopes(OAuthScopes::SUPER_USER | OAuthScopes::REPO_CREATE | OAuthScopes::REPO_ADMIN), ns: org(None), policy: full_access(), granted: None,
                  public: "push,pull,*", private: "push,pull,*", missing: "push,pull,* (create)", missing_pull: "pull" },
            Row { who: "robot claiming to own the namespace", caller: Caller::robot(), ns: own_namespace(), policy: d, granted: None,
                  public: "pull", private: "", missing: "", missing_pull: "" },
            Row { who: "user in both superuser lists", caller: Caller { principal: Principal::User { superuser: true, global_readonly: true }, scopes: None }, ns: org(None), policy: full_access(), granted: None,
                  public: "pull", private: "pull", missing: "pull", missing_pull: "pull" },
        ];
        rows
    }

    #[test]
    fn registry_matrix() {
        let all = [Pull, Push, All];
        let mut failures = Vec::new();
        for row in matrix() {
            let existing = |visibility| repo(visibility, RepoState::Normal, row.granted);
            let cells = [
                ("public", Some(existing(PUBLIC)), &all[..], row.public),
                ("private", Some(existing(PRIVATE)), &all[..], row.private),
                ("missing", None, &all[..], row.missing),
                ("missing pull", None, &[Pull][..], row.missing_pull),
            ];
            for (column, facts, requested, expected) in cells {
                let got = show(&registry_actions(
                    &row.caller,
                    &row.ns,
                    facts.as_ref(),
                    requested,
                    &row.policy,
                ));
                if got != expected {
                    failures.push(format!(
                        "{} / {column}: expected {expected:?}, got {got:?}",
                        row.who
                    ));
                }
                // On existing repositories each action is decided on its own, so asking for one
                // action alone gives it exactly when the combined request did.
                if let Some(facts) = facts {
                    for action in all {
                        let alone = registry_actions(
                            &row.caller,
                            &row.ns,
                            Some(&facts),
                            &[action],
                            &row.policy,
                        );
                        let want = expected.split(',').any(|a| a == action.as_str());
                        if alone.allows(action) != want || alone.actions.len() > 1 {
                            failures.push(format!(
                                "{} / {column} / {action} alone: got {:?}",
                                row.who, alone.actions
                            ));
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn push_alone_on_a_missing_repository_creates_it() {
        let d = Policy::default();
        let g = registry_actions(&Caller::user(), &own_namespace(), None, &[Push], &d);
        assert_eq!(show(&g), "push (create)");
        // `*` without push on a missing repository: nothing is created, so nothing to
        // administer (Quay fails with a 500 here).
        let g = registry_actions(&Caller::user(), &own_namespace(), None, &[All], &d);
        assert_eq!(show(&g), "");
        let g = registry_actions(&Caller::user(), &own_namespace(), None, &[All, Pull], &d);
        assert_eq!(show(&g), "pull");
    }

    struct StateRow {
        who: &'static str,
        caller: Caller,
        ns: NamespaceFacts,
        visibility: Visibility,
        state: RepoState,
        granted: Option<Role>,
        mirror_robot: bool,
        expected: &'static str,
    }

    #[test]
    fn repository_states_gate_writes() {
        use RepoState::*;
        let admin_team = org(Some(TeamRole::Admin));
        #[rustfmt::skip]
        let rows = [
            StateRow { who: "org admin, read-only", caller: Caller::user(), ns: admin_team, visibility: PRIVATE, state: ReadOnly, granted: None, mirror_robot: false, expected: "pull" },
            StateRow { who: "owner, read-only", caller: Caller::user(), ns: own_namespace(), visibility: PUBLIC, state: ReadOnly, granted: None, mirror_robot: false, expected: "pull" },
            StateRow { who: "anonymous, public read-only", caller: Caller::ANONYMOUS, ns: org(None), visibility: PUBLIC, state: ReadOnly, granted: None, mirror_robot: false, expected: "pull" },
            StateRow { who: "writer, read-only", caller: Caller::user(), ns: org(None), visibility: PRIVATE, state: ReadOnly, granted: Some(Role::Write), mirror_robot: false, expected: "pull" },
            StateRow { who: "org admin, mirror", caller: Caller::user(), ns: admin_team, visibility: PRIVATE, state: Mirror, granted: None, mirror_robot: false, expected: "pull" },
            StateRow { who: "mirror robot with write, mirror", caller: Caller::robot(), ns: org(None), visibility: PRIVATE, state: Mirror, granted: Some(Role::Write), mirror_robot: true, expected: "push,pull" },
            StateRow { who: "mirror robot with admin, mirror", caller: Caller::robot(), ns: org(None), visibility: PRIVATE, state: Mirror, granted: Some(Role::Admin), mirror_robot: true, expected: "push,pull" },
            StateRow { who: "mirror robot with read only, mirror", caller: Caller::robot(), ns: org(None), visibility: PRIVATE, state: Mirror, granted: Some(Role::Read), mirror_robot: true, expected: "pull" },
            StateRow { who: "other robot with write, mirror", caller: Caller::robot(), ns: org(None), visibility: PRIVATE, state: Mirror, granted: Some(Role::Write), mirror_robot: false, expected: "pull" },
            StateRow { who: "org admin, org mirror", caller: Caller::user(), ns: admin_team, visibility: PRIVATE, state: OrgMirror, granted: None, mirror_robot: false, expected: "pull" },
            StateRow { who: "org mirror robot with write, org mirror", caller: Caller::robot(), ns: org(None), visibility: PRIVATE, state: OrgMirror, granted: Some(Role::Write), mirror_robot: true, expected: "push,pull" },
            StateRow { who: "owner, marked for deletion", caller: Caller::user(), ns: own_namespace(), visibility: PRIVATE, state: MarkedForDeletion, granted: None, mirror_robot: false, expected: "" },
            StateRow { who: "anonymous, public marked for deletion", caller: Caller::ANONYMOUS, ns: org(None), visibility: PUBLIC, state: MarkedForDeletion, granted: None, mirror_robot: false, expected: "" },
            StateRow { who: "read-only superuser, marked for deletion", caller: readonly_superuser(), ns: org(None), visibility: PUBLIC, state: MarkedForDeletion, granted: None, mirror_robot: false, expected: "" },
            StateRow { who: "org admin, normal", caller: Caller::user(), ns: admin_team, visibility: PRIVATE, state: Normal, granted: None, mirror_robot: false, expected: "push,pull,*" },
        ];
        let d = Policy::default();
        for row in rows {
            let facts = RepoFacts {
                visibility: row.visibility,
                state: row.state,
                granted: row.granted,
                caller_is_mirror_robot: row.mirror_robot,
            };
            let got = registry_actions(&row.caller, &row.ns, Some(&facts), &[Pull, Push, All], &d);
            assert_eq!(show(&got), row.expected, "{}", row.who);
        }
        // A repository being deleted belongs to nobody, also through the API.
        let marked = repo(PUBLIC, MarkedForDeletion, Some(Role::Admin));
        assert_eq!(
            repository_role(&Caller::user(), &own_namespace(), &marked, &d),
            None
        );
    }

    #[test]
    fn read_only_registry_keeps_only_pull() {
        let policy = Policy {
            registry_read_only: true,
            ..Policy::default()
        };
        let all = [Pull, Push, All];
        let private = repo(PRIVATE, RepoState::Normal, None);
        let owner = Caller::user();
        let g = registry_actions(&owner, &own_namespace(), Some(&private), &all, &policy);
        assert_eq!(show(&g), "pull");
        let g = registry_actions(&owner, &own_namespace(), None, &all, &policy);
        assert_eq!(show(&g), "pull");
        let creator = org(Some(TeamRole::Creator));
        let g = registry_actions(&owner, &creator, None, &all, &policy);
        assert_eq!(show(&g), "");
        assert!(!can_create_repository(&owner, &own_namespace(), &policy));
        let g = registry_actions(
            &Caller::ANONYMOUS,
            &org(None),
            Some(&repo(PUBLIC, RepoState::Normal, None)),
            &all,
            &policy,
        );
        assert_eq!(show(&g), "pull");
        // The role itself is unchanged; the API refuses writes on its own.
        assert_eq!(
            repository_role(&owner, &own_namespace(), &private, &policy),
            Some(Role::Admin)
        );
    }

    #[test]
    fn anonymous_access_disabled() {
        let policy = Policy {
            anonymous_access: false,
            ..Policy::default()
        };
        let public = repo(PUBLIC, RepoState::Normal, None);
        let g = registry_actions(
            &Caller::ANONYMOUS,
            &org(None),
            Some(&public),
            &[Pull],
            &policy,
        );
        assert_eq!(show(&g), "");
        assert_eq!(
            repository_role(&Caller::ANONYMOUS, &org(None), &public, &policy),
            None
        );
        // Signed-in callers still read public repositories.
        let g = registry_actions(&Caller::user(), &org(None), Some(&public), &[Pull], &policy);
        assert_eq!(show(&g), "pull");
        let oauth = Caller::user().with_scopes(OAuthScopes::USER_READ);
        assert_eq!(
            repository_role(&oauth, &org(None), &public, &policy),
            Some(Role::Read)
        );
    }

    #[test]
    fn disabled_namespace_grants_nothing() {
        let d = full_access();
        let disabled = NamespaceFacts {
            enabled: false,
            ..own_namespace()
        };
        let disabled_org = NamespaceFacts {
            enabled: false,
            ..org(Some(TeamRole::Admin))
        };
        let public = repo(PUBLIC, RepoState::Normal, Some(Role::Admin));
        for (caller, ns) in [
            (Caller::user(), disabled),
            (Caller::user(), disabled_org),
            (Caller::ANONYMOUS, disabled_org),
            (superuser(), disabled_org),
            (readonly_superuser(), disabled_org),
        ] {
            assert_eq!(
                repository_role(&caller, &ns, &public, &d),
                None,
                "{caller:?}"
            );
            let g = registry_actions(&caller, &ns, Some(&public), &[Pull, Push, All], &d);
            assert_eq!(show(&g), "", "{caller:?}");
            let g = registry_actions(&caller, &ns, None, &[Pull, Push, All], &d);
            assert_eq!(show(&g), "", "{caller:?}");
            assert!(!can_create_repository(&caller, &ns, &d), "{caller:?}");
        }
        // Administration is not about content; Quay does not gate it on `enabled`.
        assert!(can_administer_org(&Caller::user(), &disabled_org, &d));
    }

    #[test]
    fn granted_actions_come_in_quay_order_once() {
        let d = Policy::default();
        let private = repo(PRIVATE, RepoState::Normal, None);
        let owner = Caller::user();
        let ns = own_namespace();
        let g = registry_actions(&owner, &ns, Some(&private), &[All, Pull, Push, Pull], &d);
        assert_eq!(g.actions, vec![Push, Pull, All]);
        let g = registry_actions(&owner, &ns, Some(&private), &[Pull, Pull], &d);
        assert_eq!(g.actions, vec![Pull]);
        let g = registry_actions(&owner, &ns, Some(&private), &[], &d);
        assert_eq!(g, Grant::default());
    }

    #[test]
    fn repository_role_examples() {
        let d = Policy::default();
        let private = |granted| repo(PRIVATE, RepoState::Normal, granted);
        let public = |granted| repo(PUBLIC, RepoState::Normal, granted);
        let user = Caller::user();
        let oauth = |scopes| Caller::user().with_scopes(scopes);
        #[rustfmt::skip]
        let cases: [(&str, Caller, NamespaceFacts, RepoFacts, Option<Role>); 16] = [
            ("owner", user, own_namespace(), private(None), Some(Role::Admin)),
            ("stranger, private", user, org(None), private(None), None),
            ("stranger, public", user, org(None), public(None), Some(Role::Read)),
            ("explicit write", user, org(None), private(Some(Role::Write)), Some(Role::Write)),
            ("explicit write, public", user, org(None), public(Some(Role::Write)), Some(Role::Write)),
            ("member team, no grant", user, org(Some(TeamRole::Member)), private(None), None),
            ("creator team, read grant", user, org(Some(TeamRole::Creator)), private(Some(Role::Read)), Some(Role::Read)),
            ("admin team beats grant", user, org(Some(TeamRole::Admin)), private(Some(Role::Read)), Some(Role::Admin)),
            ("robot in admin team", Caller::robot(), org(Some(TeamRole::Admin)), private(None), Some(Role::Admin)),
            ("repo:write caps admin", oauth(OAuthScopes::REPO_WRITE), own_namespace(), private(None), Some(Role::Write)),
            ("repo:read caps explicit write", oauth(OAuthScopes::REPO_READ), org(None), private(Some(Role::Write)), Some(Role::Read)),
            ("repo:read,repo:admin takes the strongest", oauth(OAuthScopes::REPO_READ | OAuthScopes::REPO_ADMIN), org(None), private(Some(Role::Admin)), Some(Role::Admin)),
            ("no repo scope, private", oauth(OAuthScopes::ORG_ADMIN | OAuthScopes::USER_ADMIN), own_namespace(), private(None), None),
            ("no repo scope, public stays readable", oauth(OAuthScopes::EMPTY), own_namespace(), public(None), Some(Role::Read)),
            ("direct_user_login is full access", oauth(OAuthScopes::DIRECT_USER_LOGIN), own_namespace(), private(None), Some(Role::Admin)),
            ("read-only superuser ignores token caps", readonly_superuser().with_scopes(OAuthScopes::USER_READ), org(None), private(None), Some(Role::Read)),
        ];
        for (what, caller, ns, facts, expected) in cases {
            assert_eq!(
                repository_role(&caller, &ns, &facts, &d),
                expected,
                "{what}"
            );
            for needed in [Role::Read, Role::Write, Role::Admin] {
                assert_eq!(
                    repository_allows(&caller, &ns, &facts, &d, needed),
                    expected >= Some(needed),
                    "{what} / {needed:?}"
                );
            }
        }
    }

    #[test]
    fn creating_repositories() {
        let d = Policy::default();
        let oauth = |scopes| Caller::user().with_scopes(scopes);
        #[rustfmt::skip]
        let cases: [(&str, Caller, NamespaceFacts, Policy, bool); 17] = [
            ("owner", Caller::user(), own_namespace(), d, true),
            ("someone else's user namespace", Caller::user(), NamespaceFacts { owned_by_caller: false, ..own_namespace() }, d, false),
            ("anonymous", Caller::ANONYMOUS, own_namespace(), d, false),
            ("member team", Caller::user(), org(Some(TeamRole::Member)), d, false),
            ("creator team", Caller::user(), org(Some(TeamRole::Creator)), d, true),
            ("admin team", Caller::user(), org(Some(TeamRole::Admin)), d, true),
            ("robot in creator team", Caller::robot(), org(Some(TeamRole::Creator)), d, true),
            ("robot never owns", Caller::robot(), own_namespace(), d, false),
            ("superuser without full access", superuser(), org(None), d, false),
            ("superuser with full access", superuser(), org(None), full_access(), true),
            ("read-only superuser", readonly_superuser(), org(None), full_access(), false),
            ("OAuth repo:create", oauth(OAuthScopes::REPO_CREATE), own_namespace(), d, true),
            ("OAuth org:admin", oauth(OAuthScopes::ORG_ADMIN), org(Some(TeamRole::Admin)), d, true),
            ("OAuth repo:admin", oauth(OAuthScopes::REPO_ADMIN), own_namespace(), d, false),
            ("OAuth repo:create, member team", oauth(OAuthScopes::REPO_CREATE), org(Some(TeamRole::Member)), d, false),
            ("OAuth superuser without repo:create", superuser().with_scopes(OAuthScopes::SUPER_USER), org(None), full_access(), false),
            ("OAuth superuser with repo:create", superuser().with_scopes(OAuthScopes::SUPER_USER | OAuthScopes::REPO_CREATE), org(None), full_access(), true),
        ];
        for (what, caller, ns, policy, expected) in cases {
            assert_eq!(
                can_create_repository(&caller, &ns, &policy),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn administering_and_membership() {
        let d = Policy::default();
        let oauth = |scopes| Caller::user().with_scopes(scopes);
        // (what, caller, namespace, policy, administers, member)
        #[rustfmt::skip]
        let cases: [(&str, Caller, NamespaceFacts, Policy, bool, bool); 14] = [
            ("admin team", Caller::user(), org(Some(TeamRole::Admin)), d, true, true),
            ("creator team", Caller::user(), org(Some(TeamRole::Creator)), d, false, true),
            ("member team", Caller::user(), org(Some(TeamRole::Member)), d, false, true),
            ("no team", Caller::user(), org(None), d, false, false),
            ("robot in admin team", Caller::robot(), org(Some(TeamRole::Admin)), d, true, true),
            ("anonymous", Caller::ANONYMOUS, org(Some(TeamRole::Admin)), d, false, false),
            ("own user namespace", Caller::user(), own_namespace(), d, true, true),
            ("superuser, full access", superuser(), org(None), full_access(), true, false),
            ("superuser, no full access", superuser(), org(None), d, false, false),
            ("read-only superuser", readonly_superuser(), org(None), full_access(), false, false),
            ("OAuth org:admin", oauth(OAuthScopes::ORG_ADMIN), org(Some(TeamRole::Admin)), d, true, true),
            ("OAuth repo:create in admin team", oauth(OAuthScopes::REPO_CREATE), org(Some(TeamRole::Admin)), d, false, true),
            ("OAuth repo:admin in admin team", oauth(OAuthScopes::REPO_ADMIN), org(Some(TeamRole::Admin)), d, false, false),
            ("OAuth super:user org:admin, superuser", superuser().with_scopes(OAuthScopes::SUPER_USER | OAuthScopes::ORG_ADMIN), org(None), full_access(), true, false),
        ];
        for (what, caller, ns, policy, administers, member) in cases {
            assert_eq!(
                can_administer_org(&caller, &ns, &policy),
                administers,
                "{what}"
            );
            assert_eq!(is_org_member(&caller, &ns), member, "{what}");
        }
    }

    #[test]
    fn names_and_numbers_round_trip() {
        for role in [Role::Read, Role::Write, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
        assert_eq!(Role::parse("owner"), None);

        for role in [TeamRole::Member, TeamRole::Creator, TeamRole::Admin] {
            assert_eq!(TeamRole::parse(role.as_str()), Some(role));
        }
        assert!(TeamRole::Member < TeamRole::Creator && TeamRole::Creator < TeamRole::Admin);
        assert_eq!(TeamRole::parse("Admin"), None);

        for v in [Visibility::Public, Visibility::Private] {
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
        }
        assert_eq!(Visibility::parse("internal"), None);

        let expected = [
            (0, "NORMAL"),
            (1, "READ_ONLY"),
            (2, "MIRROR"),
            (3, "MARKED_FOR_DELETION"),
            (4, "ORG_MIRROR"),
        ];
        for (number, name) in expected {
            let state = RepoState::from_i32(number).unwrap();
            assert_eq!((state.as_i32(), state.as_str()), (number, name));
            assert_eq!(RepoState::parse(name), Some(state));
        }
        assert_eq!(RepoState::from_i32(5), None);
        assert_eq!(RepoState::from_i32(-1), None);
        assert_eq!(RepoState::parse("normal"), None);
    }

    #[test]
    fn policy_defaults_are_quays() {
        let d = Policy::default();
        assert!(d.anonymous_access);
        assert!(!d.superusers_full_access);
        assert!(!d.registry_read_only);
    }
}
