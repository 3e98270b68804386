// fleetctl ls and rm: the files on one board's flash.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/cli/commands.h"
#include "server/cli/table.h"

namespace threadfleet::cli {
namespace {

struct FileWords {
  std::string board;
  std::string path;
};

int ListFiles(Session& session, const FileWords& words) {
  fleet::v1::ListFilesRequest request;
  request.set_board(words.board);
  request.set_path(words.path);
  fleet::v1::ListFilesResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListFiles(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    Table table({"NAME", "SIZE", "SHA256"});
    table.SetMaxWidth(2, 64);
    for (const board::v1::FileEntry& entry : response.entries()) {
      if (entry.is_dir()) {
        table.AddRow({entry.name() + "/", "-", "-"});
      } else {
        table.AddRow({entry.name(), absl::StrCat(entry.size_bytes()), entry.sha256_hex()});
      }
    }
    session.out() << table.Render() << std::flush;
  }
  if (response.truncated()) {
    session.err() << "fleetctl: " << response.board() << ":" << response.path()
                  << " has more entries than the " << response.entries_size() << " the board lists at once"
                  << std::endl;
  }
  return kExitOk;
}

int RemoveFile(Session& session, const FileWords& words) {
  fleet::v1::DeleteFileRequest request;
  request.set_board(words.board);
  request.set_path(words.path);
  fleet::v1::DeleteFileResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().DeleteFile(context.get(), request, &response);
  if (!status.ok()) return session.Fail(status);
  if (session.json()) {
    session.PrintJson(response, JsonLayout::kPretty);
  } else {
    session.out() << "removed " << words.board << ":" << words.path << std::endl;
  }
  return kExitOk;
}

// Throws CLI::ValidationError unless `path` is absolute (the board's own
// limits are fleetd's to check).
void RequireAbsolute(const std::string& path) {
  if (!path.empty() && path.front() != '/')
    throw CLI::ValidationError("PATH must be absolute, e.g. /app/main.py");
}

}  // namespace

void AddFileCommands(CLI::App& app, Action& action) {
  {
    auto words = std::make_shared<FileWords>();
    CLI::App* ls = app.add_subcommand("ls", "List a directory of a board's flash with sizes and SHA-256");
    ls->add_option("BOARD", words->board, "Board name")->required();
    ls->add_option("PATH", words->path, "Directory (default: /)");
    ls->callback([&action, words] {
      RequireAbsolute(words->path);
      action = [words](Session& session) { return ListFiles(session, *words); };
    });
  }
  {
    auto words = std::make_shared<FileWords>();
    CLI::App* rm = app.add_subcommand("rm", "Delete a file (or an empty directory) on a board");
    rm->add_option("BOARD", words->board, "Board name")->required();
    rm->add_option("PATH", words->path, "Absolute path of the file")->required();
    rm->callback([&action, words] {
      RequireAbsolute(words->path);
      action = [words](Session& session) { return RemoveFile(session, *words); };
    });
  }
}

}  // namespace threadfleet::cli
