// fleetctl token create|ls|revoke and audit: administration (admin role);
// fleetctl whoami: the token in use, any role.

#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/cli/commands.h"
#include "server/cli/format.h"
#include "server/cli/table.h"

namespace threadfleet::cli {
namespace {

int CreateToken(Session& session, const fleet::v1::CreateTokenRequest& request) {
  fleet::v1::CreateTokenResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().CreateToken(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << response.secret() << std::endl;  // only the secret: `$(fleetctl token create ...)`
  }
  return kExitOk;
}

int ListTokens(Session& session) {
  fleet::v1::ListTokensResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListTokens(context.get(), {}, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table({"ID", "NAME", "ROLE", "CREATED", "CREATED_BY", "REVOKED"});
  for (const fleet::v1::Token& token : response.tokens()) {
    table.AddRow({absl::StrCat(token.id()), token.name(), RoleText(token.role()),
                  FormatTimestamp(token.create_time()), token.created_by(),
                  FormatTimestamp(token.revoke_time())});
  }
  session.out() << table.Render() << std::flush;
  return kExitOk;
}

int RevokeToken(Session& session, const fleet::v1::RevokeTokenRequest& request) {
  fleet::v1::RevokeTokenResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().RevokeToken(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "revoked token " << response.token().id() << " (" << response.token().name() << ")"
                  << std::endl;
  }
  return kExitOk;
}

// What became of an audited call, in words.
std::string AuditStateText(fleet::v1::AuditState state) {
  switch (state) {
    case fleet::v1::AUDIT_STATE_STARTED:
      return "running";
    case fleet::v1::AUDIT_STATE_OUTCOME_UNKNOWN:
      return "outcome unknown";
    default:
      return "done";
  }
}

int ListAudit(Session& session, const fleet::v1::ListAuditRequest& request) {
  fleet::v1::ListAuditResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListAudit(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
    return kExitOk;
  }
  Table table({"ID", "TIME", "ACTOR", "ACTION", "TARGET", "STATE", "CODE", "MESSAGE"});
  table.SetMaxWidth(4, 60);
  table.SetMaxWidth(7, 80);
  for (const fleet::v1::AuditEntry& entry : response.entries()) {
    const bool done =
        entry.state() == fleet::v1::AUDIT_STATE_DONE || entry.state() == fleet::v1::AUDIT_STATE_UNSPECIFIED;
    table.AddRow({absl::StrCat(entry.id()), FormatTimestamp(entry.time()), entry.actor(), entry.action(),
                  entry.target(), AuditStateText(entry.state()), done ? StatusCodeName(entry.code()) : "-",
                  entry.message()});
  }
  session.out() << table.Render() << std::flush;
  if (response.next_before_id() != 0) {
    // On stderr: the table stays clean for pipes, and a person still sees it.
    session.err() << "fleetctl: older entries exist: fleetctl audit --before " << response.next_before_id()
                  << (request.after_id() != 0 ? absl::StrCat(" --after ", request.after_id()) : "")
                  << (request.limit() != 0 ? absl::StrCat(" --limit ", request.limit()) : "") << std::endl;
  }
  return kExitOk;
}

// "lab-admin (admin)": what a script or a person checks before acting.
int WhoAmI(Session& session) {
  fleet::v1::WhoAmIResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().WhoAmI(context.get(), {}, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << response.token_name() << " (" << RoleText(response.role()) << ")" << std::endl;
  }
  return kExitOk;
}

}  // namespace

void AddAdminCommands(CLI::App& app, Action& action) {
  {
    CLI::App* whoami =
        app.add_subcommand("whoami", "Print the token's name and role, e.g. \"ci (operator)\"");
    whoami->callback([&action] { action = [](Session& session) { return WhoAmI(session); }; });
  }
  CLI::App* token = app.add_subcommand("token", "Create, list and revoke bearer tokens (admin)");
  token->require_subcommand(0, 1);
  {
    struct Words {
      std::string name;
      std::string role;
    };
    auto words = std::make_shared<Words>();
    CLI::App* create = token->add_subcommand("create", "Create a token and print its secret");
    create->add_option("NAME", words->name, "What the token is for, e.g. ci")->required();
    create->add_option("--role", words->role, "viewer, operator or admin")
        ->required()
        ->check(CLI::IsMember({"viewer", "operator", "admin"}));
    create->callback([&action, words] {
      fleet::v1::CreateTokenRequest request;
      request.set_name(words->name);
      if (words->role == "viewer") request.set_role(fleet::v1::ROLE_VIEWER);
      if (words->role == "operator") request.set_role(fleet::v1::ROLE_OPERATOR);
      if (words->role == "admin") request.set_role(fleet::v1::ROLE_ADMIN);
      action = [request](Session& session) { return CreateToken(session, request); };
    });
  }
  {
    CLI::App* ls = token->add_subcommand("ls", "List every token, revoked ones included");
    ls->callback([&action] { action = [](Session& session) { return ListTokens(session); }; });
  }
  {
    auto id = std::make_shared<uint64_t>(0);
    CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token at once");
    revoke->add_option("ID", *id, "Token id (see token ls)")
        ->required()
        ->check(CLI::Range(uint64_t{1}, std::numeric_limits<uint64_t>::max()));
    revoke->callback([&action, id] {
      fleet::v1::RevokeTokenRequest request;
      request.set_id(*id);
      action = [request](Session& session) { return RevokeToken(session, request); };
    });
  }
  {
    struct Words {
      uint64_t after_id = 0;
      uint64_t before_id = 0;
      int32_t limit = 0;
    };
    auto words = std::make_shared<Words>();
    // Ids are below 2^63 (fleetd refuses larger ones).
    const auto kIds = CLI::Range(uint64_t{0}, uint64_t{std::numeric_limits<int64_t>::max()});
    CLI::App* audit = app.add_subcommand(
        "audit", "List audit log entries, newest first; says how to see older ones (admin)");
    audit->add_option("--after", words->after_id, "Only entries with a larger id")->check(kIds);
    audit->add_option("--before", words->before_id, "Only entries with a smaller id (the next, older page)")
        ->check(kIds);
    audit->add_option("--limit", words->limit, "At most this many (default: fleetd's, 100; at most 1000)")
        ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()));
    audit->callback([&action, words] {
      fleet::v1::ListAuditRequest request;
      request.set_after_id(words->after_id);
      request.set_before_id(words->before_id);
      request.set_limit(words->limit);
      action = [request](Session& session) { return ListAudit(session, request); };
    });
  }
}

}  // namespace threadfleet::cli
