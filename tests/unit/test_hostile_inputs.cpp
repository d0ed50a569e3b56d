// Regression tests for what hostile or broken inputs did before they were fixed: stack overflows on
// deep JSON and long NPY fields, values beyond float32, NaN weights, FIFOs, stale temporary files,
// unbounded options. Each input is the smallest that showed the fault.
#include <ATen/ATen.h>
#include <stb_image_write.h>  // declarations: liblatent compiles stb (src/io/image.cpp)
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "latent/adam.h"
#include "latent/atomic_file.h"
#include "latent/checkpoint.h"
#include "latent/data.h"
#include "latent/image.h"
#include "latent/json.h"
#include "latent/npy.h"
#include "latent/train.h"
#include "models/registry.h"
#include "test_util.h"

namespace latent {
namespace {

using test::TempDir;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A tiny mlp_vae checkpoint's description and its freshly initialized model.
std::pair<CheckpointInfo, Model> tiny_model() {
  CheckpointInfo info;
  info.model = ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [8], "latent": 2})");
  info.data_shape = {6};
  return {info, make_model(info.model, info.data_shape)};
}

// 70,000 levels crashed while an error message was built (json::dump recursing per level).
TEST(HostileJson, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep(70000, '[');
  EXPECT_ERROR_WITH(parse_json(deep, "the body"), "the body: JSON nested deeper than 64 levels");
  EXPECT_ERROR_WITH(parse_json("{\"a\": " + deep, "x"), "nested deeper");
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file("{\"type\": " + deep), "nested deeper");
  // Brackets inside strings are text, not nesting; 64 levels are fine.
  EXPECT_EQ(parse_json("{\"a\": \"" + deep + "\\\"]\"}", "x")["a"].get<std::string>().size(), deep.size() + 2);
  EXPECT_NO_THROW(parse_json(std::string(64, '[') + std::string(64, ']'), "x"));
  EXPECT_ERROR_WITH(parse_json(std::string(65, '[') + std::string(65, ']'), "x"), "nested deeper");
}

TEST(HostileJson, MessagesQuoteInvalidUtf8AndLongTextSafely) {
  const std::string bad = "ab\xff\xfe\xc3(cd\x01";
  const std::string e = text_excerpt(bad);
  EXPECT_NO_THROW(nlohmann::json(e).dump());
  EXPECT_EQ(e, "ab\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd(cd ");
  EXPECT_EQ(text_excerpt(std::string(500, 'x'), 10), std::string(10, 'x') + "...");
  EXPECT_NO_THROW(nlohmann::json(json_excerpt(nlohmann::json(bad))).dump());
  try {
    parse_json("{\"a\": \xff}", "body");
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NO_THROW(nlohmann::json(std::string(err.what())).dump()) << "the message must be valid UTF-8";
  }
}

TEST(HostileJson, CheckpointMetadataIsBoundedToo) {
  TempDir dir;
  auto [info, m] = tiny_model();
  checkpoint_save(dir / "ok.safetensors", info, *m);
  SafetensorsFile f = safetensors_load(dir / "ok.safetensors");
  f.metadata["metrics"] = std::string(70000, '[');
  safetensors_save(dir / "deep.safetensors", f);
  EXPECT_ERROR_WITH(checkpoint_load(dir / "deep.safetensors"), "metadata 'metrics': JSON nested deeper");
}

// nlohmann's type errors used to come out bare ("type must be string, but is number"), naming no file.
TEST(HostileCheckpoint, MetadataOfTheWrongTypeNamesTheFileAndTheKey) {
  TempDir dir;
  auto [info, m] = tiny_model();
  checkpoint_save(dir / "ok.safetensors", info, *m);
  const SafetensorsFile good = safetensors_load(dir / "ok.safetensors");
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"data", R"({"source": 5})", "metadata 'data' holds a value of the wrong type"},
      {"model", R"({"type": "mlp_vae", "hidden": "400", "latent": 2})", "metadata 'model': model config: 'hidden'"},
      {"state", R"({"epoch": {"a": 1}})", "metadata 'state' holds a bad value for 'epoch'"},
      {"train", R"([1, 2])", "metadata 'train' is not an object"},
      {"metrics", R"({"a": 1})", "metadata 'metrics' is not a list"},
  };
  for (const auto& [key, value, message] : cases) {
    SafetensorsFile f = good;
    f.metadata[key] = value;
    safetensors_save(dir / "bad.safetensors", f);
    EXPECT_ERROR_WITH(checkpoint_load(dir / "bad.safetensors"), dir / "bad.safetensors: " + message);
  }
  SafetensorsFile f = good;
  f.metadata["train"] = R"({"epochs": "ten"})";
  safetensors_save(dir / "train.safetensors", f);
  EXPECT_ERROR_WITH(train_resume(dir / "train.safetensors", 0, dir / "out", false),
                    dir / "train.safetensors: metadata 'train' or 'state' holds a value of the wrong type");
}

// fuzz_checkpoint: a training option of the wrong type escaped TrainOptions::from_json as
// nlohmann's type_error (the fuzzer's harness, like any caller but train_resume, saw a terminate).
TEST(HostileCheckpoint, TrainingOptionsOfTheWrongTypeAreOneError) {
  EXPECT_ERROR_WITH(TrainOptions::from_json(nlohmann::json::parse(R"({"lr": "0.001"})")),
                    "training options hold a value of the wrong type");
  EXPECT_ERROR_WITH(TrainOptions::from_json(nlohmann::json::parse("[1]")), "training options must be a JSON object");
  EXPECT_EQ(TrainOptions::from_json(nlohmann::json::parse(R"({"lr": 0.5})")).adam.lr, 0.5);
}

// A checkpoint with NaN weights evaluated to nan and exited 0.
TEST(HostileCheckpoint, NonFiniteWeightsAreNamed) {
  TempDir dir;
  auto [info, m] = tiny_model();
  {
    at::NoGradGuard no_grad;
    named_parameters(*m)[2].second.view({-1})[0] = INFINITY;
  }
  checkpoint_save(dir / "inf.safetensors", info, *m);
  EXPECT_ERROR_WITH(checkpoint_load(dir / "inf.safetensors"), named_parameters(*m)[2].first + " holds NaN or infinite values");
}

// A checkpoint's config comes from a file: sizes are capped, and a model is refused by its size
// before anything is allocated for it. The size is computed without building the model; it must
// match what building gives.
TEST(HostileCheckpoint, ModelSizesAreKnownBeforeBuildingAndCapped) {
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {R"({"type": "mlp_vae", "hidden": [400], "latent": 20})", {1, 28, 28}},
      {R"({"type": "mlp_vae", "hidden": [64, 32], "latent": 5, "likelihood": "gaussian", "variance": "learned"})", {30}},
      {R"({"type": "conv_vae", "channels": [8, 16], "hidden": [32], "latent": 4})", {3, 16, 12}},
      {R"({"type": "vq_vae", "channels": [8, 16], "codebook": 32, "code_dim": 6})", {1, 16, 16}},
  };
  for (const auto& [text, shape] : cases) {
    SCOPED_TRACE(text);
    const ModelConfig c = ModelConfig::from_text_or_file(text);
    Model m = make_model(c, shape);
    double built = 0;
    for (const auto& [name, t] : named_state(*m)) built += static_cast<double>(t.numel());
    const double estimate = family(c.type).numbers(c, shape);
    EXPECT_NEAR(estimate / built, 1.0, 0.05) << estimate << " against " << built;
  }
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [70000], "latent": 2})"),
                    "'hidden' must be an integer from 1 to 65536");
  std::string layers = "1";
  for (int i = 0; i < 32; ++i) layers += ", 1";  // 33 layers
  EXPECT_ERROR_WITH(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "latent": 2, "hidden": [)" + layers + "]}"),
                    "lists 33 layers, at most 32");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_ERROR_WITH(
      make_model(ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [65536, 65536], "latent": 2})"), {1, 28, 28}),
      "at most 268M");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// A FIFO given as a checkpoint was read for ever.
TEST(HostileCheckpoint, AFifoIsRefusedAtOnce) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_ERROR_WITH(checkpoint_load(dir / "pipe"), "not a regular file");
  EXPECT_ERROR_WITH(safetensors_map(dir / "pipe"), "not a regular file");
  EXPECT_ERROR_WITH(read_file(dir / "pipe"), "not a regular file");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

TEST(HostileCheckpoint, AGarbledOptimizerStepIsNamed) {
  TempDir dir;
  SafetensorsFile f;
  Adam adam({{"w", at::zeros({2})}}, {});
  adam.save_state(f);
  f.metadata["optimizer.step"] = "99999999999999999999999";
  EXPECT_ERROR_WITH(adam.load_state(f), "'optimizer.step' is not a step count");
}

// A header field of tens of thousands of characters overflowed the stack in std::regex.
TEST(HostileNpy, LongHeaderFieldsAndBadShapesAreRefused) {
  TempDir dir;
  const std::string good = npy_serialize(at::ones({4, 2}));
  auto with_header = [&](const std::string& header) {
    std::string out("\x93NUMPY\x02\x00", 8);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + std::string(32, '\0');
  };
  EXPECT_ERROR_WITH(npy_parse(with_header("{'descr': '" + std::string(60000, 'f') + "'}"), "long.npy"), "unsupported dtype");
  EXPECT_ERROR_WITH(npy_parse(with_header(std::string(70000, ' ')), "huge.npy"), "at most 64 KB");
  for (const char* shape : {"(-2, 4)", "(2.4,)", "(2, x)", "(4", "(99999999999999,)"}) {
    std::string bad = good;
    const size_t at = bad.find("(4, 2)");
    bad.replace(at, 6, std::string(shape) + std::string(6 > std::strlen(shape) ? 6 - std::strlen(shape) : 0, ' '));
    if (std::strlen(shape) > 6)
      bad = with_header(std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") + shape + ", }");
    SCOPED_TRACE(shape);
    EXPECT_ERROR_WITH(npy_parse(bad, "shape.npy"), "shape");
  }
  EXPECT_TRUE(at::equal(npy_parse(good, "good.npy"), at::ones({4, 2})));
}

// 1e39 became inf as float32 and training "diverged"; 1e-320 was refused as not finite.
TEST(HostileCsv, ValuesBeyondFloat32AreNamedAndTinyOnesRead) {
  TempDir dir;
  write_text(dir / "big.csv", "a,b\n1,2\n3,1e39\n");
  EXPECT_ERROR_WITH(csv_load(dir / "big.csv"), "big.csv: line 3, column 2: '1e39' is beyond float32's range");
  write_text(dir / "tiny.csv", "1,1e-320\n2,3\n");
  const Dataset d = csv_load(dir / "tiny.csv");
  EXPECT_EQ(d.x.size(0), 2);
  EXPECT_EQ(d.x[0][1].item<float>(), 0.0f);
}

// kill -9 during a checkpoint write left .model.safetensors.tmp.* files that nothing removed.
TEST(HostileFiles, TemporariesOfDeadWritersAreRemovedOnTheNextWrite) {
  TempDir dir;
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  int status = 0;
  ::waitpid(dead, &status, 0);  // reaped: its pid is free (kill(pid, 0) fails with ESRCH)
  const std::string stale = dir / (".out.bin.tmp." + std::to_string(dead) + ".AbC123");
  const std::string live = dir / (".out.bin.tmp." + std::to_string(::getpid()) + ".XyZ789");
  write_text(stale, "half a checkpoint");
  write_text(live, "another write of this process, under way");
  atomic_write(dir / "out.bin", "whole");
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_EQ(read_file(dir / "out.bin"), "whole");
}

// Found by fuzz_image: a BMP whose height decodes as 0; resizing it divided by zero (UBSan).
TEST(HostileImages, AnImageWithoutPixelsIsRefused) {
  const std::string bmp(
      "\x42\x4d\x4e\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x04\x02\x00\x00\x00\x00\x00\x00\x01\x00\x18\x00"
      "\x00\x00\x00\x00\x18\x00\x00\x00\x13\x0b\x00\x00\x13\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x60\xc3\xaa\x09\x0c\x11"
      "\xf2\xe7\x41\xaf\xde\xef\x7c\x6d\x05\x0a\x0a\xb5\xe5\x96\xf6\xdf\x9b\xd1",
      78);
  EXPECT_ERROR_WITH(image_decode(bmp, "zero.bmp", 1, 28, 28), "holds no pixels");
}

// Found by fuzz_image (a 58-byte timeout, then out of memory): a top-down BMP declares its height
// negative; stb's header probe reports it as it is, so width x height passed the pixel cap as a
// negative number while the decoder allocated 4 x 16,776,965 pixels. The cap now takes |height|.
TEST(HostileImages, ATopDownBmpIsCappedByItsTrueHeight) {
  const std::string found(
      "\x42\x4d\x3e\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x04\x00\x00\x00\xfb\x00\x00\xff"
      "\x01\x00\x18\x00\x00\x00\x00\x00\x00\x00\x4b\xff\x70\x00\x00\x36\x00\x02\x13\x18\x00\xff\x00\x96\xf6\xff"
      "\xff\xff\x00\x00\x00\x70",
      58);
  EXPECT_ERROR_WITH(image_decode(found, "tall.bmp", 1, 28, 28, int64_t{1} << 22), "is too large");
  // A genuine top-down BMP (2 x 2, 24 bits, rows padded to 8 bytes) still decodes, top row first.
  auto le32 = [](int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto le16 = [](int16_t v) { return std::string(reinterpret_cast<const char*>(&v), 2); };
  const std::string rows = std::string("\xff\xff\xff\x00\x00\x00\x00\x00", 8) + std::string(8, '\0');
  const std::string bmp = "BM" + le32(54 + 16) + le32(0) + le32(54) + le32(40) + le32(2) + le32(-2) + le16(1) + le16(24) +
                          le32(0) + le32(16) + le32(2835) + le32(2835) + le32(0) + le32(0) + rows;
  const at::Tensor x = image_decode(bmp, "top-down.bmp", 1, 0, 0);
  ASSERT_EQ(x.sizes().vec(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_FLOAT_EQ(x[0][0][0].item<float>(), 1.0f);  // the white pixel is the first of the first row
  EXPECT_FLOAT_EQ(x[0][1][0].item<float>(), 0.0f);
}

// Found by fuzz_image: a PNG with an empty chunk, where stb copies zero bytes to a null buffer
// (UBSan; stb's code, exempted in CMakeLists.txt). It decodes or is refused, nothing else.
TEST(HostileImages, APngWithAnEmptyChunkDecodesOrIsRefused) {
  const std::string png(
      "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x05\x00\x00\x00\x03\x08\x02\x00\x00\x00\x03"
      "\x00\x00\x00\x00\x00\x00\x00\x49\x44\x41\x54\x78\x9c\x01\x30\x00\xcf\xff\x00\x75\x7d\x0b\xa2\x97\x74\x90\x5d\xf0\x02\x14"
      "\xbf\xac\xf1\x76\x00\xfa\x80\x40\x3a\x9d\x69\x0a\x97\x83\xbf\x93\x05\xd4\x9b\x68\xbc\xa3\x01\xb0\x60\x00\x00\xff\x24\x94"
      "\xe5\xb2\xd0\xb8\x0e\x10\x1e\x46\x17\x7b\x73\x81\xd2\x22\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82",
      116);
  try {
    const at::Tensor x = image_decode(png, "empty-chunk.png", 1, 28, 28);
    EXPECT_EQ(x.sizes().vec(), (std::vector<int64_t>{1, 28, 28}));
  } catch (const Error&) {
  }
}

// Found by fuzz_image: a JPEG (after fill bytes) whose Huffman table declares more than 256 codes;
// stb wrote past the table's arrays (UBSan: index 257 out of bounds). Refused before stb sees it.
TEST(HostileImages, AJpegHuffmanTableOfMoreThan256CodesIsRefused) {
  const std::string jpeg(
      "\xff\xff\xff\xff\xff\xd8\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xc4\xc3\xcd\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\xf7\xbf\x3c\x06\x00"
      "\x00\x62\x00\x10\x00\x00\x00\xff",
      98);
  EXPECT_ERROR_WITH(image_decode(jpeg, "huffman.jpg", 0, 0, 0),
                    "huffman.jpg: not a readable JPEG image (a JPEG Huffman table declares");
  // A real JPEG still decodes: one written by stb_image_write (the standard's Huffman tables).
  std::string written;
  std::vector<unsigned char> rgb(8 * 6 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<unsigned char>(i * 7);
  ASSERT_TRUE(stbi_write_jpg_to_func(
      [](void* out, void* data, int size) { static_cast<std::string*>(out)->append(static_cast<char*>(data), size); }, &written,
      8, 6, 3, rgb.data(), 90));
  const at::Tensor x = image_decode(written, "x.jpg", 3, 0, 0);
  EXPECT_EQ(x.sizes().vec(), (std::vector<int64_t>{3, 6, 8}));
}

// Found by fuzz_idx: an IDX of shape [0, ...] copied its zero bytes from a null pointer (UBSan).
TEST(HostileIdx, AnEmptyTensorReadsWithoutTouchingData) {
  TempDir dir;
  const std::string bytes("\x00\x00\x00\x0d\x02\x00\x00\x00\x00\x7d\x4c\x00\x00", 13);
  write_text(dir / "empty.idx", bytes.substr(1));  // the fuzz input's first byte picks raw IDX
  EXPECT_EQ(idx_load(dir / "empty.idx").numel(), 0);
}

// 100,000 threads were created; --beta nan was accepted and left a checkpoint resume could not read;
// --epochs 0 said it saved a checkpoint it never wrote.
TEST(HostileOptions, ThreadsEpochsAndNonFiniteNumbersAreRefused) {
  EXPECT_ERROR_WITH(set_num_threads(100000), "--threads 100000: must be 0 (every core) to");
  EXPECT_NO_THROW(set_num_threads(0));
  TempDir dir;
  const ModelConfig config = ModelConfig::from_text_or_file(R"({"type": "mlp_vae", "hidden": [8], "latent": 2})");
  write_text(dir / "t.csv", "0.1,0.2\n0.3,0.4\n0.5,0.6\n");
  DataSpec data;
  data.source = dir / "t.csv";
  TrainOptions o;
  o.out = dir / "run";
  o.progress = false;
  o.epochs = 0;
  EXPECT_ERROR_WITH(train(config, data, o), "--epochs must be at least 1");
  o.epochs = 1;
  for (double* field : {&o.beta, &o.kl_warmup, &o.free_bits, &o.adam.lr}) {
    const double keep = *field;
    *field = NAN;
    EXPECT_ERROR_WITH(train(config, data, o), "must be a finite number");
    *field = keep;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "run/model.safetensors"));
}

}  // namespace
}  // namespace latent
