// The explorer's live training apart from HTTP: a job streams its steps, snapshots and epochs as
// numbered events, pauses and resumes, stops with a checkpoint, refuses a second job and bad
// parameters, and keeps every run inside the run folder.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "explorer_api.h"
#include "explorer_server.h"
#include "latent/checkpoint.h"
#include "latent/npy.h"
#include "server_fixture.h"
#include "test_util.h"
#include "train_jobs.h"

namespace latent::server {
namespace {

using nlohmann::json;

struct Jobs {
  test::TempDir dir;
  std::unique_ptr<TrainJobs> jobs;
  int64_t seen = 0;
  std::vector<json> events;

  explicit Jobs(int64_t snapshot_every = 5) {
    at::manual_seed(1);
    npy_save(dir / "images.npy", at::randint(0, 256, {200, 1, 8, 8}, at::kByte));
    TrainJobOptions o;
    o.run_folder = dir / "runs";
    o.datasets = {{"images", dir / "images.npy"}};
    o.snapshot_every = snapshot_every;
    o.scatter = 15;
    jobs = std::make_unique<TrainJobs>(o);
  }
  // Reads events until one of `type` (and `state`, for state events) arrives; fails after 60 s.
  json until(const std::string& type, const std::string& state = "") {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const json got = jobs->events(seen, 200);
      seen = got["next"];
      for (const json& e : got["events"]) {
        events.push_back(e);
        if (e["type"] == type && (state.empty() || e["state"] == state)) return e;
      }
    }
    ADD_FAILURE() << "no " << type << " " << state << " event within 60 s";
    return json();
  }
  int64_t count(const std::string& type) const {
    return std::count_if(events.begin(), events.end(), [&](const json& e) { return e["type"] == type; });
  }
};

json run_body(const std::string& name, int epochs = 2) {
  return {{"name", name}, {"data", "images"}, {"hidden", {16}}, {"latent", 2}, {"epochs", epochs}, {"batch_size", 20}};
}

TEST(TrainJobs, StreamsStepsSnapshotsAndEpochsThenFinishesWithACheckpoint) {
  Jobs j;
  const json started = j.jobs->start(run_body("first"));
  EXPECT_EQ(started["run"], "first");
  const json done = j.until("state", "finished");
  // 200 images, a tenth held out: 180 in batches of 20 = 9 steps per epoch.
  EXPECT_EQ(j.count("step"), 18);
  EXPECT_EQ(j.count("epoch"), 2);
  EXPECT_EQ(j.count("snapshot"), 4);  // steps 5, 10, 15 and the end
  for (size_t i = 0; i < j.events.size(); ++i) EXPECT_EQ(j.events[i]["seq"], static_cast<int64_t>(i) + 1);
  const json snap = *std::find_if(j.events.begin(), j.events.end(), [](const json& e) { return e["type"] == "snapshot"; });
  EXPECT_EQ(snap["scatter"]["points"].size(), 15u);
  EXPECT_EQ(snap["scatter"]["points"][0].size(), 2u);
  EXPECT_EQ(snap["samples"]["shape"], json({8, 1, 8, 8}));
  EXPECT_EQ(snap["grid"]["shape"], json({100, 1, 8, 8}));
  const std::string checkpoint = done["checkpoint"];
  EXPECT_EQ(std::filesystem::path(checkpoint).parent_path(), std::filesystem::path(j.dir / "runs/first"));
  EXPECT_EQ(checkpoint_load(checkpoint).info.metrics.size(), 2u);
  // A page that comes later reads the whole story from the start, or from where it left off.
  EXPECT_EQ(j.jobs->events(0, 0)["events"].size(), j.events.size());
  EXPECT_EQ(j.jobs->events(static_cast<int64_t>(j.events.size()) - 2, 0)["events"].size(), 2u);
  EXPECT_FALSE(j.jobs->status()["running"].get<bool>());
}

TEST(TrainJobs, PausesResumesAndStopsWithACheckpoint) {
  Jobs j(1000);
  j.jobs->start(run_body("long", 500));
  j.until("step");
  j.jobs->control("pause");
  j.until("state", "paused");
  const int64_t steps = j.count("step");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(j.jobs->events(j.seen, 0)["events"].size(), 0u) << "a paused run takes no steps";
  EXPECT_EQ(j.count("step"), steps);
  j.jobs->control("resume");
  j.until("state", "running");
  j.until("step");
  // A second run is refused while one trains.
  try {
    j.jobs->start(run_body("second"));
    ADD_FAILURE() << "a second run started";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 409);
  }
  j.jobs->control("stop");
  const json stopped = j.until("state", "stopped");
  LoadedCheckpoint ck = checkpoint_load(stopped["checkpoint"].get<std::string>());
  EXPECT_GT(ck.info.state["global_step"].get<int64_t>(), 0);
  try {
    j.jobs->control("pause");
    ADD_FAILURE() << "paused a run that does not exist";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 409);
  }
  // Another run may start now; its events go on from the last number, and the last run's are dropped.
  const int64_t last = j.seen;
  j.jobs->start(run_body("after", 1));
  const json first = j.until("state", "running");
  EXPECT_EQ(first["seq"], last + 1);
  j.until("state", "finished");
  const json kept = j.jobs->events(0, 0)["events"];
  EXPECT_EQ(kept.front()["seq"], last + 1);
  EXPECT_EQ(kept.back()["seq"], j.seen);
}

TEST(TrainJobs, RefusesBadParametersAndNamesOutsideTheRunFolder) {
  Jobs j;
  auto status_of = [&](json body) {
    try {
      j.jobs->start(body);
    } catch (const ApiError& e) {
      return e.status;
    }
    return 200;
  };
  json body = run_body("x");
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{{"latent", 0},
                                                                            {"latent", 65},
                                                                            {"lr", "fast"},
                                                                            {"lr", -1},
                                                                            {"beta", -1},
                                                                            {"epochs", 0},
                                                                            {"data", "imagenet"},
                                                                            {"model", "gan"},
                                                                            {"hidden", json::array()},
                                                                            {"name", "../outside"},
                                                                            {"name", "/tmp/x"},
                                                                            {"name", ""},
                                                                            {"colour", "red"}}) {
    json b = body;
    b[key] = value;
    EXPECT_EQ(status_of(b), 400) << key << " = " << value;
  }
  EXPECT_EQ(status_of(json::array()), 400);
  json nan = body;
  nan["lr"] = std::nan("");
  EXPECT_EQ(status_of(nan), 400);
  EXPECT_FALSE(std::filesystem::exists(j.dir / "runs")) << "nothing was written";
}

// Over HTTP: the routes answer with the same events, the stream delivers them as Server-Sent Events
// and resumes after Last-Event-ID, and errors are 4xx with the message.
TEST(TrainJobs, ServerStreamsTheRunAsServerSentEvents) {
  Jobs j;
  test::TempDir served;  // the model the page shows (its own images.npy)
  test::write_tiny_image_checkpoint(served);
  ServeOptions opt;
  opt.port = 0;
  opt.threads = 8;
  TrainJobOptions t;
  t.run_folder = j.dir / "runs";
  t.datasets = {{"images", j.dir / "images.npy"}};
  t.snapshot_every = 5;
  t.scatter = 10;
  opt.train = std::make_shared<TrainJobs>(t);
  ExplorerServer server(checkpoint_load(served / "model.safetensors"), served / "model.safetensors", opt);
  std::thread serving([&] { server.run(); });
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60);

  auto bad = c.Post("/api/train/start", R"({"name": "x", "data": "images", "latent": 0})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(json::parse(bad->body)["error"].get<std::string>().find("'latent'"), std::string::npos);
  EXPECT_EQ(c.Post("/api/train/stop", "", "application/json")->status, 409);

  auto started = c.Post("/api/train/start", run_body("web").dump(), "application/json");
  ASSERT_TRUE(started);
  ASSERT_EQ(started->status, 200) << started->body;
  // The stream, read until the run finishes: every event once, in order, as "id:" and "data:" lines.
  std::string text;
  std::vector<json> streamed;
  auto read = [&](const httplib::Headers& headers) {
    text.clear();
    streamed.clear();
    return c.Get("/api/train/stream", headers, [&](const char* data, size_t n) {
      text.append(data, n);
      for (size_t end; (end = text.find("\n\n")) != std::string::npos; text.erase(0, end + 2)) {
        const std::string message = text.substr(0, end);
        const size_t at = message.find("data: ");
        if (at == std::string::npos) continue;  // a keep-alive comment
        streamed.push_back(json::parse(message.substr(at + 6)));
        if (streamed.back()["type"] == "state" && streamed.back()["state"] == "finished") return false;
      }
      return true;
    });
  };
  read({});
  ASSERT_FALSE(streamed.empty());
  for (size_t i = 0; i < streamed.size(); ++i) EXPECT_EQ(streamed[i]["seq"], static_cast<int64_t>(i) + 1);
  EXPECT_EQ(std::count_if(streamed.begin(), streamed.end(), [](const json& e) { return e["type"] == "step"; }), 18);
  // A reconnect with Last-Event-ID gets only what came after it.
  const int64_t total = static_cast<int64_t>(streamed.size());
  read({{"Last-Event-ID", std::to_string(total - 3)}});
  ASSERT_EQ(streamed.size(), 3u);
  EXPECT_EQ(streamed.front()["seq"], total - 2);
  // The JSON route gives the same events.
  auto polled = c.Get(("/api/train/events?after=" + std::to_string(total - 1)).c_str());
  ASSERT_TRUE(polled);
  EXPECT_EQ(json::parse(polled->body)["events"][0]["seq"], total);
  // The run becomes the model every route shows.
  EXPECT_EQ(json::parse(c.Get("/api/info")->body)["latent"], 3);
  EXPECT_EQ(c.Post("/api/train/use", R"({"run": "../web"})", "application/json")->status, 400);
  EXPECT_EQ(c.Post("/api/train/use", R"({"run": "nothing"})", "application/json")->status, 404);
  auto used = c.Post("/api/train/use", R"({"run": "web"})", "application/json");
  ASSERT_TRUE(used);
  ASSERT_EQ(used->status, 200) << used->body;
  EXPECT_EQ(json::parse(c.Get("/api/info")->body)["latent"], 2);
  auto decoded = c.Post("/api/decode", R"({"z": [[0.5, -0.5]]})", "application/json");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->status, 200) << decoded->body;
  server.stop();
  serving.join();
}

}  // namespace
}  // namespace latent::server
