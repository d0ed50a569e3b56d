/// @brief Reading and writing the JSON fields of the explorer's API: every check a request's body
/// gets, each failure an ApiError (4xx) whose message names the field.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace latent::server {

/// Values rounded to four decimals (far below what a plot or a decoder can tell apart; small replies).
nlohmann::json vector_json(const at::Tensor& v);  // [d] -> [..]
nlohmann::json rows_json(const at::Tensor& m);    // [N, d] -> [[..], ..]

/// Values in [0, 1] -> uint8 bytes (rounded, clamped), in the tensor's order.
std::string u8_pixels(const at::Tensor& x);
/// Images [N, C, H, W] with values in [0, 1] -> {"shape", "pixels": base64 of u8_pixels}.
nlohmann::json pixels_json(const at::Tensor& x);

/// body[key]; 400 when the body is not an object or the field is missing.
const nlohmann::json& field(const nlohmann::json& body, const std::string& key);
/// body[key] or `fallback` when absent; 400 unless an integer in [lo, hi].
int64_t integer_field(const nlohmann::json& body, const std::string& key, int64_t fallback, int64_t lo, int64_t hi);
/// body[key] or `fallback` when absent; 400 unless a finite number in (lo, hi].
double number_field(const nlohmann::json& body, const std::string& key, double fallback, double lo, double hi);
std::string string_field(const nlohmann::json& body, const std::string& key, const std::string& fallback);

/// The largest magnitude a code's value may have: far outside anything a decoder was trained on,
/// yet small enough that no product inside it overflows.
constexpr double kMaxCode = 1e6;

/// One code: an array of d finite numbers of magnitude <= kMaxCode -> p[0 .. d). `where` names it.
void code_json(const nlohmann::json& v, const std::string& where, int64_t d, float* p);

/// The positions of an interpolation: body "t" (1 to `max` numbers in [0, 1]) or "steps" (2 to
/// `max`, evenly spaced from 0 to 1, default 8); not both. [T] float.
at::Tensor interpolation_positions(const nlohmann::json& body, int64_t max);

/// The principal plane of encoded means mu [N, d]: the two leading eigenvectors of their covariance.
struct PrincipalPlane {
  at::Tensor axes;       // [2, d], unit rows, leading first, each with its largest component positive
  at::Tensor explained;  // [2], fraction of the variance along each axis
};
PrincipalPlane principal_plane(const at::Tensor& mu);

/// body "method": "linear" (default) or "slerp".
std::string interpolation_method(const nlohmann::json& body);

}  // namespace latent::server
