// The explorer page's files, compiled into the binary from web/ (see cmake/embed_web.cmake).
#pragma once

#include <cstddef>
#include <string>

namespace latent::server {

struct WebAsset {
  const char* path;  // "/index.html", "/js/app.js", ...
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

/// The file served at `path` ("/" is "/index.html"), or nullptr.
const WebAsset* web_asset(const std::string& path);

}  // namespace latent::server
