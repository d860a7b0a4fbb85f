// Small progressive enhancements for the user, todo and weibo apps; every page works without them.
"use strict";

// Shows how many characters are left in fields that have a maxlength.
document.querySelectorAll("textarea[maxlength]").forEach((field) => {
  const max = Number(field.getAttribute("maxlength"));
  const counter = document.createElement("small");
  counter.className = "hint counter";
  const update = () => {
    counter.textContent = `${max - [...field.value].length} characters left`;
  };
  field.addEventListener("input", update);
  field.after(counter);
  update();
});
