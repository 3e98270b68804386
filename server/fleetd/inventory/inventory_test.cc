#include "server/fleetd/inventory/inventory.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/store/sqlite_store.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

std::vector<std::string> Names(const std::vector<BoardRecord>& boards) {
  std::vector<std::string> names;
  for (const BoardRecord& board : boards) names.push_back(board.name);
  return names;
}

// ---- Label selectors

TEST(LabelSelectorTest, EmptySelectorMatchesEverything) {
  LabelSelector selector = LabelSelector::Parse("  ").value();

  EXPECT_TRUE(selector.empty());
  EXPECT_TRUE(selector.Matches({}));
  EXPECT_TRUE(selector.Matches({{"lab", "a"}}));
}

TEST(LabelSelectorTest, TermsAreAndedEqualities) {
  LabelSelector selector = LabelSelector::Parse("lab=a,role=sensor").value();

  EXPECT_TRUE(selector.Matches({{"lab", "a"}, {"role", "sensor"}, {"rack", "3"}}));
  EXPECT_FALSE(selector.Matches({{"lab", "a"}}));
  EXPECT_FALSE(selector.Matches({{"lab", "b"}, {"role", "sensor"}}));
}

TEST(LabelSelectorTest, NotEqualMatchesOtherValuesAndMissingKeys) {
  LabelSelector selector = LabelSelector::Parse("lab=a, role!=spare").value();

  EXPECT_TRUE(selector.Matches({{"lab", "a"}, {"role", "sensor"}}));
  EXPECT_TRUE(selector.Matches({{"lab", "a"}}));
  EXPECT_FALSE(selector.Matches({{"lab", "a"}, {"role", "spare"}}));
}

TEST(LabelSelectorTest, WhitespaceAroundTermsAndOperatorsIsIgnored) {
  LabelSelector selector = LabelSelector::Parse(" lab = a ,role!= x ").value();

  EXPECT_TRUE(selector.Matches({{"lab", "a"}}));
}

struct BadSelector {
  // Names the test case.
  std::string name;
  std::string text;
  std::string message;
};

class BadSelectorTest : public ::testing::TestWithParam<BadSelector> {};

TEST_P(BadSelectorTest, IsRejectedWithAMessageNamingTheTerm) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(GetParam().text);

  EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(selector.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(Malformed, BadSelectorTest,
                         ::testing::Values(BadSelector{"EmptyMiddleTerm", "lab=a,,role=b", "term 2 is empty"},
                                           BadSelector{"TrailingComma", "lab=a,", "term 2 is empty"},
                                           BadSelector{"NoOperator", "lab",
                                                       "term 1 (\"lab\") has no \"=\" or \"!=\""},
                                           BadSelector{"EmptyKey", "=a", "has an empty key"},
                                           BadSelector{"EmptyValue", "lab=", "has an empty value"},
                                           BadSelector{"EmptyNotEqualValue", "lab!=", "has an empty value"},
                                           BadSelector{"DoubleEquals", "lab==a", "may only contain"},
                                           BadSelector{"SpaceInValue", "lab=a b", "may only contain"},
                                           BadSelector{"SpaceInKey", "la b=a", "may only contain"},
                                           BadSelector{"BadThirdTerm", "lab=a,role=sensor,x!y", "term 3"}),
                         [](const auto& info) { return info.param.name; });

// ---- Names, addresses, labels

TEST(ValidateTest, BoardNames) {
  EXPECT_TRUE(ValidateBoardName("b01").ok());
  EXPECT_TRUE(ValidateBoardName("lab-a.b_01").ok());
  EXPECT_FALSE(ValidateBoardName("").ok());
  EXPECT_FALSE(ValidateBoardName("-b").ok());
  EXPECT_FALSE(ValidateBoardName("b 1").ok());
  EXPECT_FALSE(ValidateBoardName("b/1").ok());
  EXPECT_FALSE(ValidateBoardName(std::string(65, 'b')).ok());
}

TEST(ValidateTest, Addresses) {
  EXPECT_TRUE(ValidateAddress("127.0.0.1:7001").ok());
  EXPECT_TRUE(ValidateAddress("board-1.lab:443").ok());
  EXPECT_TRUE(ValidateAddress("[::1]:7001").ok());
  EXPECT_THAT(ValidateAddress("127.0.0.1").message(), HasSubstr("no port"));
  EXPECT_THAT(ValidateAddress(":7001").message(), HasSubstr("no host"));
  EXPECT_THAT(ValidateAddress("h:0").message(), HasSubstr("from 1 to 65535"));
  EXPECT_THAT(ValidateAddress("h:70001").message(), HasSubstr("from 1 to 65535"));
  EXPECT_THAT(ValidateAddress("h:-1").message(), HasSubstr("from 1 to 65535"));
  EXPECT_THAT(ValidateAddress("h:").message(), HasSubstr("from 1 to 65535"));
  EXPECT_THAT(ValidateAddress("h:99999999999999999999").message(), HasSubstr("from 1 to 65535"));
  EXPECT_THAT(ValidateAddress("h st:1").message(), HasSubstr("is not a host name"));
}

// ---- lab.yaml

TEST(LabFileTest, ParsesBoardsInFileOrder) {
  absl::StatusOr<std::vector<BoardRecord>> boards = ParseLabFile(R"yaml(
boards:
  - name: b02
    address: 127.0.0.1:7002
    labels: {lab: a, role: sensor}
  - name: b01
    address: 127.0.0.1:7001
)yaml",
                                                                 "lab.yaml");

  ASSERT_TRUE(boards.ok()) << boards.status();
  ASSERT_THAT(Names(*boards), ElementsAre("b02", "b01"));
  EXPECT_EQ((*boards)[0].address, "127.0.0.1:7002");
  EXPECT_EQ((*boards)[0].labels, (Labels{{"lab", "a"}, {"role", "sensor"}}));
  EXPECT_EQ((*boards)[0].origin, fleet::BOARD_ORIGIN_LAB_FILE);
  EXPECT_THAT((*boards)[1].labels, IsEmpty());
}

TEST(LabFileTest, EmptyFileHasNoBoards) {
  EXPECT_THAT(ParseLabFile("", "lab.yaml").value(), IsEmpty());
  EXPECT_THAT(ParseLabFile("boards: []\n", "lab.yaml").value(), IsEmpty());
}

struct BadLabFile {
  // Names the test case.
  std::string name;
  std::string yaml;
  std::string message;
};

class BadLabFileTest : public ::testing::TestWithParam<BadLabFile> {};

TEST_P(BadLabFileTest, IsRejectedNamingTheLineAndBoard) {
  absl::StatusOr<std::vector<BoardRecord>> boards = ParseLabFile(GetParam().yaml, "lab.yaml");

  EXPECT_EQ(boards.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boards.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, BadLabFileTest,
    ::testing::Values(
        BadLabFile{"DuplicateName",
                   "boards:\n"
                   "  - name: b01\n"
                   "    address: 127.0.0.1:7001\n"
                   "  - name: b01\n"
                   "    address: 127.0.0.1:7002\n",
                   "lab.yaml:4: board b01 is defined twice (first at line 2)"},
        BadLabFile{"MissingAddress",
                   "boards:\n"
                   "  - name: b01\n"
                   "    address: 127.0.0.1:7001\n"
                   "  - name: b02\n"
                   "    labels: {lab: a}\n",
                   "lab.yaml:4: board b02: missing address"},
        BadLabFile{"BadPort",
                   "boards:\n"
                   "  - name: b03\n"
                   "    address: 127.0.0.1:70001\n",
                   "lab.yaml:3: board b03: address \"127.0.0.1:70001\": port \"70001\" must be "
                   "a number from 1 to 65535"},
        BadLabFile{"MissingName",
                   "boards:\n"
                   "  - address: 127.0.0.1:7001\n",
                   "lab.yaml:2: board entry 1 has no name"},
        BadLabFile{"UnknownKey",
                   "boards:\n"
                   "  - name: b01\n"
                   "    adress: 127.0.0.1:7001\n",
                   "lab.yaml:3: board b01: unknown key \"adress\""},
        BadLabFile{"BadLabelValue",
                   "boards:\n"
                   "  - name: b01\n"
                   "    address: 127.0.0.1:7001\n"
                   "    labels: {lab: a b}\n",
                   "lab.yaml:2: board b01: label lab: value \"a b\" may only contain"},
        BadLabFile{"LabelsNotAMap",
                   "boards:\n"
                   "  - name: b01\n"
                   "    address: 127.0.0.1:7001\n"
                   "    labels: [lab]\n",
                   "board b01: labels must be a map"},
        BadLabFile{"BadBoardName",
                   "boards:\n"
                   "  - name: bad name\n"
                   "    address: 127.0.0.1:7001\n",
                   "lab.yaml:2: board bad name: board name \"bad name\" must start"},
        BadLabFile{"EntryNotAMap",
                   "boards:\n"
                   "  - just-a-string\n",
                   "lab.yaml:2: board entry 1 must be a map"},
        BadLabFile{"UnknownTopLevelKey", "board:\n  - name: b01\n", "lab.yaml:1: unknown key \"board\""},
        BadLabFile{"BoardsNotAList", "boards: {name: b01}\n", "`boards` must be a list"},
        BadLabFile{"TopLevelNotAMap", "- b01\n", "expected a map with a `boards` list"},
        BadLabFile{"UnterminatedFlowSequence", "boards:\n  - name: b01\n    address: [\n", "lab.yaml:"}),
    [](const auto& info) { return info.param.name; });

TEST(LabFileTest, YamlSyntaxErrorsNameTheLine) {
  absl::StatusOr<std::vector<BoardRecord>> boards =
      ParseLabFile("boards:\n  - name: b01\n   bad: indent\n", "x.yaml");

  EXPECT_EQ(boards.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(boards.status().message(), HasSubstr("x.yaml:3: not valid YAML"));
}

// ---- Inventory over a real store

class InventoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "inventory_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    Restart(kLab);
  }
  void TearDown() override {
    inventory_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Closes everything and opens it again over the same file, as a fleetd
  // restart with `lab_yaml` as its lab file.
  void Restart(absl::string_view lab_yaml) {
    inventory_.reset();
    store_.reset();
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open((dir_ / "fleet.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::vector<BoardRecord>> lab = ParseLabFile(lab_yaml, "lab.yaml");
    ASSERT_TRUE(lab.ok()) << lab.status();
    absl::StatusOr<std::unique_ptr<Inventory>> inventory = Inventory::Open(*store_, *std::move(lab), kT0);
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
  }

  std::vector<std::string> Select(std::string labels, std::vector<std::string> boards = {}) {
    fleet::Selector selector;
    selector.set_labels(labels);
    for (std::string& b : boards) selector.add_boards(b);
    absl::StatusOr<std::vector<BoardRecord>> picked = inventory_->Select(selector);
    EXPECT_TRUE(picked.ok()) << picked.status();
    return picked.ok() ? Names(*picked) : std::vector<std::string>{};
  }

  static constexpr absl::string_view kLab = R"yaml(
boards:
  - {name: b01, address: "127.0.0.1:7001", labels: {lab: a, role: sensor}}
  - {name: b02, address: "127.0.0.1:7002", labels: {lab: a, role: actuator}}
  - {name: b03, address: "127.0.0.1:7003", labels: {lab: b, role: sensor}}
)yaml";

  std::filesystem::path dir_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<Inventory> inventory_;
};

TEST_F(InventoryTest, SelectByLabels) {
  EXPECT_THAT(Select(""), ElementsAre("b01", "b02", "b03"));
  EXPECT_THAT(Select("lab=a"), ElementsAre("b01", "b02"));
  EXPECT_THAT(Select("lab=a,role=sensor"), ElementsAre("b01"));
  EXPECT_THAT(Select("role!=sensor"), ElementsAre("b02"));
  EXPECT_THAT(Select("lab=c"), IsEmpty());
}

TEST_F(InventoryTest, SelectByNamesAndBoth) {
  EXPECT_THAT(Select("", {"b03", "b01"}), ElementsAre("b01", "b03"));
  EXPECT_THAT(Select("lab=a", {"b03", "b01"}), ElementsAre("b01"));
}

TEST_F(InventoryTest, SelectErrors) {
  fleet::Selector unknown;
  unknown.add_boards("b01");
  unknown.add_boards("zz");
  unknown.add_boards("yy");
  fleet::Selector malformed;
  malformed.set_labels("lab");

  absl::Status unknown_status = inventory_->Select(unknown).status();

  EXPECT_EQ(unknown_status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown_status.message(), HasSubstr("no boards named \"zz\", \"yy\""));
  EXPECT_EQ(inventory_->Select(malformed).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(InventoryTest, AddedBoardsArePersistedAcrossRestarts) {
  ASSERT_TRUE(inventory_->Add("b10", "127.0.0.1:7010", {{"lab", "a"}}, kT0).ok());

  Restart(kLab);

  BoardRecord board = inventory_->Get("b10").value();
  EXPECT_EQ(board.address, "127.0.0.1:7010");
  EXPECT_EQ(board.origin, fleet::BOARD_ORIGIN_RUNTIME);
  EXPECT_THAT(Select("lab=a"), ElementsAre("b01", "b02", "b10"));
}

TEST_F(InventoryTest, AddRejectsTakenNamesAndBadInput) {
  EXPECT_EQ(inventory_->Add("b01", "127.0.0.1:7100", {}, kT0).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(inventory_->Add("b 1", "127.0.0.1:7100", {}, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(inventory_->Add("b11", "127.0.0.1", {}, kT0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(inventory_->Add("b11", "h:1", {{"k", "a,b"}}, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(InventoryTest, LabFileBoardsCannotBeChangedAtRunTime) {
  absl::Status remove = inventory_->Remove("b01");
  absl::Status relabel = inventory_->SetLabels("b01", {{"x", "y"}}, {}).status();

  EXPECT_EQ(remove.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(remove.message(), HasSubstr("lab.yaml"));
  EXPECT_EQ(relabel.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(InventoryTest, RuntimeBoardsCanBeRelabelledAndRemoved) {
  ASSERT_TRUE(inventory_->Add("b10", "127.0.0.1:7010", {{"lab", "a"}, {"role", "spare"}}, kT0).ok());

  BoardRecord relabelled =
      inventory_->SetLabels("b10", {{"lab", "b"}, {"rack", "2"}}, {"role", "absent"}).value();

  EXPECT_EQ(relabelled.labels, (Labels{{"lab", "b"}, {"rack", "2"}}));
  EXPECT_EQ(inventory_->Get("b10").value().labels, relabelled.labels);
  ASSERT_TRUE(inventory_->Remove("b10").ok());
  EXPECT_EQ(inventory_->Get("b10").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inventory_->Remove("b10").code(), absl::StatusCode::kNotFound);
}

TEST_F(InventoryTest, EditedLabFileReplacesLabBoardsOnRestart) {
  ASSERT_TRUE(inventory_->Add("b04", "127.0.0.1:7104", {}, kT0).ok());

  Restart(R"yaml(
boards:
  - {name: b01, address: "127.0.0.1:7101", labels: {lab: c}}
  - {name: b04, address: "127.0.0.1:7004"}
)yaml");

  EXPECT_THAT(Select(""), ElementsAre("b01", "b04"));
  BoardRecord b01 = inventory_->Get("b01").value();
  EXPECT_EQ(b01.address, "127.0.0.1:7101");
  EXPECT_EQ(b01.labels, (Labels{{"lab", "c"}}));
  // The file took over the runtime board of the same name.
  EXPECT_EQ(inventory_->Get("b04").value().origin, fleet::BOARD_ORIGIN_LAB_FILE);
}

TEST_F(InventoryTest, ReadLabFileReportsMissingFilesAndParses) {
  std::string path = (dir_ / "lab.yaml").string();
  EXPECT_EQ(ReadLabFile(path).status().code(), absl::StatusCode::kNotFound);
  std::ofstream(path) << "boards:\n  - name: b01\n    address: 127.0.0.1:99999\n";

  absl::Status status = ReadLabFile(path).status();

  EXPECT_THAT(status.message(), HasSubstr(path + ":3: board b01"));
}

}  // namespace
}  // namespace threadfleet::fleetd
