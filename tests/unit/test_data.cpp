// Every loader on crafted good files and on truncated, corrupt and mismatched ones.
#include <stb_image_write.h>
#include <zlib.h>

#include "latent/data.h"
#include "latent/error.h"
#include "latent/image.h"
#include "latent/npy.h"
#include "test_util.h"

namespace latent {
namespace {

using test::TempDir;
using test::write_bytes;

std::string idx_bytes(uint8_t type, std::vector<uint32_t> dims, const std::string& data) {
  std::string out{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((d >> s) & 0xff);
  return out + data;
}

std::string gzip(const std::string& raw) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = raw.size();
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = out.size();
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(Idx, ReadsRawAndGzipImagesWithLabels) {
  TempDir dir;
  std::string pixels;
  for (int i = 0; i < 3 * 2 * 2; ++i) pixels += static_cast<char>(i * 20);
  write_bytes(dir / "img-idx3-ubyte", idx_bytes(0x08, {3, 2, 2}, pixels));
  write_bytes(dir / "img-idx3-ubyte.gz", gzip(idx_bytes(0x08, {3, 2, 2}, pixels)));
  write_bytes(dir / "lab-idx1-ubyte.gz", gzip(idx_bytes(0x08, {3}, std::string{'\x02', '\x00', '\x07'})));
  for (const char* name : {"img-idx3-ubyte", "img-idx3-ubyte.gz"}) {
    Dataset d = load_source(dir / name, dir / "lab-idx1-ubyte.gz", DataSpec{});
    EXPECT_EQ(d.x.sizes(), at::IntArrayRef({3, 1, 2, 2}));
    EXPECT_NEAR(d.x[2][0][1][1].item<float>(), 220.0f / 255, 1e-6);
    EXPECT_EQ(d.y[2].item<int64_t>(), 7);
  }
  // Multi-byte types are big-endian on disk.
  write_bytes(dir / "f-idx1", idx_bytes(0x0D, {1}, std::string{'\x3f', '\x80', '\x00', '\x00'}));
  EXPECT_EQ(idx_load(dir / "f-idx1").item<float>(), 1.0f);
}

TEST(Idx, RejectsMalformedFilesNamingThem) {
  TempDir dir;
  const std::string pixels(12, '\x10');
  write_bytes(dir / "short-idx3", idx_bytes(0x08, {3, 2, 2}, pixels.substr(0, 7)));
  EXPECT_ERROR_WITH(idx_load(dir / "short-idx3"), "short-idx3: not a valid IDX file: truncated");
  write_bytes(dir / "long-idx3", idx_bytes(0x08, {3, 2, 2}, pixels + "xx"));
  EXPECT_ERROR_WITH(idx_load(dir / "long-idx3"), "unexpected bytes");
  write_bytes(dir / "magic-idx3",
              "\x01\x02\x08\x01"
              "abcd");
  EXPECT_ERROR_WITH(idx_load(dir / "magic-idx3"), "bad magic");
  write_bytes(dir / "type-idx3", idx_bytes(0x42, {1}, "a"));
  EXPECT_ERROR_WITH(idx_load(dir / "type-idx3"), "unknown data type");
  std::string gz = gzip(idx_bytes(0x08, {3, 2, 2}, pixels));
  write_bytes(dir / "cut-idx3.gz", gz.substr(0, gz.size() / 2));
  EXPECT_ERROR_WITH(idx_load(dir / "cut-idx3.gz"), "truncated gzip");
  write_bytes(dir / "img-idx3", idx_bytes(0x08, {3, 2, 2}, pixels));
  write_bytes(dir / "lab-idx1", idx_bytes(0x08, {2}, "\x01\x02"));
  EXPECT_ERROR_WITH(load_source(dir / "img-idx3", dir / "lab-idx1", DataSpec{}), "has 2 labels for 3 examples");
}

TEST(Npy, ReadsUint8AndFloat32AndRoundTrips) {
  TempDir dir;
  at::Tensor u8 = at::arange(24).to(at::kByte).reshape({2, 3, 4});
  npy_save(dir / "u8.npy", u8);
  Dataset d = load_source(dir / "u8.npy", "", DataSpec{});
  EXPECT_EQ(d.x.sizes(), at::IntArrayRef({2, 1, 3, 4}));
  EXPECT_NEAR(d.x[1][0][2][3].item<float>(), 23.0f / 255, 1e-7);
  at::Tensor f = at::randn({5, 3});
  npy_save(dir / "f.npy", f);
  EXPECT_TRUE(at::equal(npy_load(dir / "f.npy"), f));
  npy_save(dir / "v.npy", at::arange(4));
  EXPECT_EQ(npy_load(dir / "v.npy").sizes(), at::IntArrayRef({4}));
}

TEST(Npy, RejectsMalformedFiles) {
  TempDir dir;
  std::string good = npy_serialize(at::ones({4, 2}));
  write_bytes(dir / "cut.npy", good.substr(0, good.size() - 3));
  EXPECT_ERROR_WITH(npy_load(dir / "cut.npy"), "truncated");
  write_bytes(dir / "magic.npy", "NUMPY" + good);
  EXPECT_ERROR_WITH(npy_load(dir / "magic.npy"), "magic");
  std::string big = good;
  big.replace(big.find("<f4"), 3, ">f4");
  write_bytes(dir / "be.npy", big);
  EXPECT_ERROR_WITH(npy_load(dir / "be.npy"), "unsupported dtype");
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  write_bytes(dir / "fortran.npy", fortran);
  EXPECT_ERROR_WITH(npy_load(dir / "fortran.npy"), "Fortran");
  at::Tensor bad = at::ones({3, 2});
  bad[1][1] = NAN;
  npy_save(dir / "nan.npy", bad);
  EXPECT_ERROR_WITH(load_source(dir / "nan.npy", "", DataSpec{}), "NaN");
}

TEST(Csv, ReadsTablesWithOrWithoutHeader) {
  TempDir dir;
  write_bytes(dir / "h.csv", "a,b,c\n1,2,3\n4.5, -6e-1 ,7\n\n");
  write_bytes(dir / "n.csv", "1,2\n3,4\n");
  Dataset h = load_source(dir / "h.csv", "", DataSpec{});
  EXPECT_EQ(h.x.sizes(), at::IntArrayRef({2, 3}));
  EXPECT_NEAR(h.x[1][1].item<float>(), -0.6f, 1e-7);
  EXPECT_EQ(load_source(dir / "n.csv", "", DataSpec{}).x.sizes(), at::IntArrayRef({2, 2}));
}

TEST(Csv, RejectsRaggedAndNonNumericRows) {
  TempDir dir;
  write_bytes(dir / "ragged.csv", "1,2,3\n4,5\n");
  EXPECT_ERROR_WITH(csv_load(dir / "ragged.csv"), "line 2 has 2 fields, expected 3");
  write_bytes(dir / "text.csv", "a,b\n1,x\n");
  EXPECT_ERROR_WITH(csv_load(dir / "text.csv"), "line 2, column 2: 'x'");
  write_bytes(dir / "nan.csv", "1,nan\n");
  EXPECT_ERROR_WITH(csv_load(dir / "nan.csv"), "not a finite number");
  write_bytes(dir / "empty.csv", "a,b\n");
  EXPECT_ERROR_WITH(csv_load(dir / "empty.csv"), "no data rows");
}

TEST(ImageFolder, ReadsClassesFromSubfoldersAndResizes) {
  TempDir dir;
  at::Tensor red = at::zeros({3, 6, 4});
  red[0].fill_(1.0);
  write_bytes(dir / "cats/a.png", png_encode(red));
  write_bytes(dir / "cats/b.png", png_encode(red));
  write_bytes(dir / "dogs/c.png", png_encode(at::full({1, 6, 4}, 0.5)));
  Dataset d = image_folder_load(dir.str(), 3, 0, 0);
  EXPECT_EQ(d.x.sizes(), at::IntArrayRef({3, 3, 6, 4}));
  EXPECT_EQ(d.classes, (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_EQ(d.y[2].item<int64_t>(), 1);
  EXPECT_NEAR(d.x[0][0][0][0].item<float>(), 1.0f, 1e-6);
  Dataset g = image_folder_load(dir.str(), 1, 3, 2);
  EXPECT_EQ(g.x.sizes(), at::IntArrayRef({3, 1, 3, 2}));
}

TEST(ImageFolder, ReadsJpegAndBmpBesidePng) {
  TempDir dir;
  std::vector<uint8_t> gray(6 * 4 * 3, 128);  // 4x6 RGB mid-gray
  auto sink = [](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size); };
  std::string jpg, bmp;
  ASSERT_TRUE(stbi_write_jpg_to_func(sink, &jpg, 4, 6, 3, gray.data(), 95));
  ASSERT_TRUE(stbi_write_bmp_to_func(sink, &bmp, 4, 6, 3, gray.data()));
  write_bytes(dir / "a.JPG", jpg);
  write_bytes(dir / "b.bmp", bmp);
  write_bytes(dir / "c.png", png_encode(at::full({3, 6, 4}, 128.0f / 255)));
  Dataset d = image_folder_load(dir.str(), 3, 0, 0);
  ASSERT_EQ(d.x.sizes(), at::IntArrayRef({3, 3, 6, 4}));
  EXPECT_TRUE(test::all_close(d.x, at::full({3, 3, 6, 4}, 128.0f / 255), 0, 2.0 / 255));  // JPEG is lossy
}

TEST(ImageFolder, RejectsMixedSizesAndCorruptImages) {
  TempDir dir;
  write_bytes(dir / "a.png", png_encode(at::zeros({1, 4, 4})));
  write_bytes(dir / "b.png", png_encode(at::zeros({1, 5, 4})));
  EXPECT_ERROR_WITH(image_folder_load(dir.str(), 0, 0, 0), "b.png: image is 4x5");
  TempDir bad;
  write_bytes(bad / "a.png", "\x89PNG\r\n\x1a\nbroken");
  EXPECT_ERROR_WITH(image_folder_load(bad.str(), 0, 0, 0), "a.png");
  TempDir none;
  write_bytes(none / "notes.txt", "hello");
  EXPECT_ERROR_WITH(image_folder_load(none.str(), 0, 0, 0), "no PNG");
}

TEST(LoadData, HeldOutSplitIsFixedAndStandardizationUsesTrainingStatistics) {
  TempDir dir;
  at::Tensor t = at::randn({50, 3}) * 10 + 5;
  npy_save(dir / "t.npy", t);
  DataSpec spec;
  spec.source = dir / "t.npy";
  spec.test_fraction = 0.2;
  spec.standardize = true;
  DataSplit a = load_data(spec), b = load_data(spec);
  EXPECT_EQ(a.train.size(), 40);
  EXPECT_EQ(a.test.size(), 10);
  EXPECT_TRUE(at::equal(a.test.x, b.test.x));
  EXPECT_TRUE(test::all_close(a.train.x.mean(0), at::zeros({3}), 0, 1e-5));
  EXPECT_TRUE(test::all_close(a.train.x.std(0, false), at::ones({3}), 0, 1e-5));
  EXPECT_ERROR_WITH(load_data(DataSpec{"/no/such.npy"}), "no such file");
  spec.source = dir / "t.bin";
  write_bytes(spec.source, "x");
  EXPECT_ERROR_WITH(load_data(spec), "cannot tell the format");
}

TEST(LoadData, FashionMnistIsTheNamedDefault) {
  if (!std::filesystem::exists(fashion_mnist_dir() + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  DataSpec spec;
  spec.source = "fashion-mnist";
  DataSplit s = load_data(spec);
  EXPECT_EQ(s.train.x.sizes(), at::IntArrayRef({60000, 1, 28, 28}));
  EXPECT_EQ(s.test.x.sizes(), at::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_EQ(s.train.classes.size(), 10u);
  EXPECT_GE(s.test.x.min().item<float>(), 0.0f);
  EXPECT_LE(s.test.x.max().item<float>(), 1.0f);
  // Test only: the same test split, no training data read.
  spec.classes = {3, 7};
  DataSplit t = load_data(spec, /*test_only=*/true), full = load_data(spec);
  EXPECT_EQ(t.train.size(), 0);
  EXPECT_EQ(t.test.size(), 2000);
  EXPECT_TRUE(at::equal(t.test.x, full.test.x));
  EXPECT_TRUE(at::equal(t.test.y, full.test.y));
}

TEST(LoadData, TestOnlyReadsTheTrainingDataWhereTheSplitNeedsIt) {
  TempDir dir;
  npy_save(dir / "train.npy", at::randn({30, 4}));
  npy_save(dir / "test.npy", at::randn({6, 4}));
  DataSpec spec;
  spec.source = dir / "train.npy";
  spec.test_source = dir / "test.npy";
  EXPECT_EQ(load_data(spec, true).train.size(), 0);  // a test file of its own
  EXPECT_EQ(load_data(spec, true).test.size(), 6);
  spec.standardize = true;  // the statistics come from the training data
  DataSplit s = load_data(spec, true);
  EXPECT_EQ(s.train.size(), 30);
  EXPECT_TRUE(at::equal(s.test.x, load_data(spec).test.x));
  spec.standardize = false;
  spec.test_source.clear();  // a held-out split: drawn from all the data
  spec.test_fraction = 0.5;
  EXPECT_EQ(load_data(spec, true).train.size(), 15);
}

}  // namespace
}  // namespace latent
