#include <cstring>
#include <fstream>

#include "latent/error.h"
#include "latent/safetensors.h"
#include "test_util.h"

namespace latent {
namespace {

using test::TempDir;

std::string with_header(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + data;
}

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  TempDir dir;
  SafetensorsFile f;
  f.tensors.emplace_back("a.weight", at::randn({3, 4}));
  f.tensors.emplace_back("half", at::randn({5}).to(at::kHalf));
  f.tensors.emplace_back("bf16", at::randn({2, 2}).to(at::kBFloat16));
  f.tensors.emplace_back("f64", at::randn({1}).to(at::kDouble));
  f.tensors.emplace_back("i64", at::arange(7));
  f.tensors.emplace_back("u8", at::arange(5).to(at::kByte));
  f.tensors.emplace_back("empty", at::zeros({0, 3}));
  f.tensors.emplace_back("scalar", at::scalar_tensor(2.5));
  f.metadata["config"] = R"({"type": "mlp_vae"})";
  safetensors_save(dir / "x.safetensors", f);
  SafetensorsFile g = safetensors_load(dir / "x.safetensors");
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    EXPECT_EQ(g.tensors[i].first, f.tensors[i].first);  // file order kept
    EXPECT_EQ(g.tensors[i].second.scalar_type(), f.tensors[i].second.scalar_type());
    EXPECT_TRUE(at::equal(g.tensors[i].second, f.tensors[i].second)) << f.tensors[i].first;
  }
  EXPECT_EQ(g.metadata.at("config"), f.metadata.at("config"));
}

TEST(Safetensors, MappedFilesGiveTheSameTensorsAndOutliveTheirFileObject) {
  TempDir dir;
  SafetensorsFile f;
  f.tensors.emplace_back("big", at::randn({300, 100}));  // several pages
  f.tensors.emplace_back("half", at::randn({7}).to(at::kHalf));
  f.metadata["k"] = "v";
  safetensors_save(dir / "m.safetensors", f);
  at::Tensor big;
  {
    SafetensorsFile g = safetensors_map(dir / "m.safetensors");
    ASSERT_EQ(g.tensors.size(), 2u);
    EXPECT_TRUE(at::equal(g.find("half"), f.find("half")));
    EXPECT_EQ(g.metadata.at("k"), "v");
    big = g.find("big");
  }
  EXPECT_TRUE(at::equal(big, f.find("big")));  // the mapping lives with its tensors
  // Dropping the pages keeps the values (they come back from the file); other tensors are left alone.
  EXPECT_TRUE(safetensors_drop_pages(big));
  EXPECT_TRUE(at::equal(big, f.find("big")));
  const at::Tensor own = f.find("big").clone();
  EXPECT_FALSE(safetensors_drop_pages(own));
  EXPECT_TRUE(at::equal(own, f.find("big")));
  EXPECT_ERROR_WITH(safetensors_map("/nonexistent/file.safetensors"), "cannot open");
  std::ofstream(dir / "bad.safetensors") << "abc";
  EXPECT_ERROR_WITH(safetensors_map(dir / "bad.safetensors"), "shorter than");
}

TEST(Safetensors, ReadsAFileWrittenByAnIndependentWriter) {
  // Written by tests/make_fixtures.py with its own writer.
  SafetensorsFile f = safetensors_load(std::string(LATENT_FIXTURES) + "/mlp_bernoulli.safetensors");
  EXPECT_TRUE(f.find("encoder.0.weight").defined());
  EXPECT_EQ(f.find("encoder.0.weight").sizes(), at::IntArrayRef({10, 12}));
  EXPECT_EQ(f.find("encoder.0.weight").scalar_type(), at::kDouble);
  EXPECT_EQ(f.metadata.at("beta"), "0.7");
}

TEST(Safetensors, RejectsCorruptFiles) {
  const std::string good_json = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data(8, '\0');
  EXPECT_NO_THROW(safetensors_parse(with_header(good_json, data), "f"));
  EXPECT_ERROR_WITH(safetensors_parse("abc", "f"), "shorter than");
  std::string huge(8, '\xff');
  EXPECT_ERROR_WITH(safetensors_parse(huge + "{}", "f"), "exceeds");
  std::string past = with_header(good_json, data);
  past[0] = static_cast<char>(200);
  EXPECT_ERROR_WITH(safetensors_parse(past, "f"), "runs past the end");
  EXPECT_ERROR_WITH(safetensors_parse(with_header("{nope", data), "f"), "header: invalid JSON");
  EXPECT_ERROR_WITH(safetensors_parse(with_header("[1, 2]", ""), "f"), "does not start with");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(good_json, std::string(4, '\0')), "f"), "past the data buffer");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "f"),
                    "dtype and shape need 12");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", data), "f"),
                    "unsupported dtype");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "f"),
                    "non-negative");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data), "f"),
                    "begin after");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(good_json, std::string(12, '\0')), "f"), "belong to no tensor");
  const std::string overlap =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_ERROR_WITH(safetensors_parse(with_header(overlap, data), "f"), "overlaps");
  const std::string hole = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_ERROR_WITH(safetensors_parse(with_header(hole, data), "f"), "hole");
  EXPECT_ERROR_WITH(safetensors_parse(with_header(R"({"__metadata__":{"k":1}})", ""), "f"), "not a string");
  EXPECT_ERROR_WITH(safetensors_load("/nonexistent/file.safetensors"), "cannot open");
}

TEST(Safetensors, AtomicSaveLeavesNoTemporaryFiles) {
  TempDir dir;
  SafetensorsFile f;
  f.tensors.emplace_back("w", at::ones({4}));
  safetensors_save(dir / "m.safetensors", f);
  safetensors_save(dir / "m.safetensors", f);  // replaces
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.str())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace latent
